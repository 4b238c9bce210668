#if os(Linux)
// Handing chunks out to workers, and writing the frames queued for them.
extension Supervisor {
    // MARK: - Scheduling

    /// Hands out chunks to workers with room, filling every worker to one chunk before any
    /// gets a second.
    func pump() {
        guard state == .running else { return }
        let maximumDepth = QueueDepth.maximum(
            lastChunkNanos: callOrder.first.flatMap { calls[$0] }?.schedule.lastChunkNanos)
        // Frames are queued while chunks are handed out and written once per worker at the
        // end, so a worker receives its batch of small tasks in one write.
        defer {
            flushQueuedFrames()
            if streamsWaitForLoopThread {
                streamsWaitForLoopThread = false
                loop.onLoopThread { [self] in pump() }
            }
        }
        // Level by level (every worker to one chunk before any gets a second), over the
        // workers that can still take one: a worker past the short-chunk byte budget, or
        // that may run no more items, leaves the walk for the rest of this pump (its bytes
        // only grow here). So a pump walks the workers about twice, not maximumDepth (up to
        // 128) times: at 200 workers that walk was ~50 µs of the loop thread per result.
        let workers = slots.count
        let shortBytes = QueueDepth.shortChunksBudget(workers: workers)
        var open = pumpWalk
        pumpWalk = []  // taken, not copied (a nested pump would start its own)
        defer {
            open.removeAll(keepingCapacity: true)
            pumpWalk = open
        }
        var leastHeld = Int.max
        for case let worker? in slots where worker.phase == .ready {
            open.append(worker)
            leastHeld = min(leastHeld, worker.inFlight.count)
        }
        // Levels up to the least any worker holds admit no one: start above them.
        var depth = leastHeld == Int.max ? 1 : leastHeld + 1
        while depth <= maximumDepth && !open.isEmpty {
            var kept = 0
            // By index: `for worker in open` would hold the buffer, and the compaction
            // below would then copy it at every level.
            for index in open.indices {
                let worker = open[index]
                if depth > QueueDepth.chunksPerWorker && worker.inFlightBytes >= shortBytes {
                    continue  // full for this pump: no later round admits it either
                }
                let budget = settings.maximumItemsPerWorker.map { $0 - worker.itemsQueued } ?? Int.max
                guard budget > 0 else { continue }  // it has all the items it may run; it is recycled next
                if QueueDepth.admits(
                    held: worker.inFlight.count, heldBytes: worker.inFlightBytes, depth: depth, workers: workers)
                {
                    guard let (call, chunk) = nextChunk(atMost: budget) else { return }
                    dispatch(call, chunk, to: worker)
                }
                open[kept] = worker
                kept += 1
            }
            open.removeLast(open.count - kept)
            depth += 1
        }
    }

    /// The next chunk to send: a given-back one, else new items from the oldest call that
    /// has some and room in its window. Inline work on a caller's thread passes over
    /// streams: their chunks come from the program's own sequence, read on the loop thread.
    func nextChunk(atMost budget: Int) -> (CallRecord, CallSchedule<TaskFrame>.Chunk)? {
        var index = 0
        while index < callOrder.count {
            guard let call = calls[callOrder[index]] else {
                callOrder.remove(at: index)
                continue
            }
            if call.readsProgramInput && loop.runsInlineWork {
                streamsWaitForLoopThread = true
                index += 1
                continue
            }
            if let chunk = call.schedule.takeRequeued() { return (call, chunk) }
            if let new = call.takeNewChunk(atMost: budget, nextChunkID: &nextChunkID, post: { post(call, $0) }) {
                guard case .frame(_, let frame) = new.produced else {
                    preconditionFailure("a chunk made for the threads engine reached the process engine")
                }
                return (call, .init(id: new.id, range: new.range, payload: frame))
            }
            if call.schedule.isExhausted {
                callOrder.remove(at: index)
            } else {
                index += 1  // its window is full: the consumer will make room
            }
        }
        return nil
    }

    /// Queues a chunk (and the call's function, the first time) for a worker; ``pump()``
    /// writes the queued frames.
    func dispatch(_ call: CallRecord, _ chunk: CallSchedule<TaskFrame>.Chunk, to worker: WorkerConnection) {
        let range = chunk.range
        guard chunk.payload.bytes.count - Frame.headerSize <= maximumPayload else {
            let error = MultiprocessingError(
                .frameTooLarge,
                "the inputs of items \(range.lowerBound)..<\(range.upperBound) encode to \(chunk.payload.bytes.count) bytes, above the frame limit of \(maximumPayload) bytes: pass a smaller chunkSize, send smaller items, or raise ProcessPool.Options.maximumFrameBytes"
            )
            call.schedule.abandoned(range)
            post(call, .chunkFailed(range: range, error))
            return
        }
        if !worker.installed.contains(call.id) {
            worker.queue(call.installFrame)
            worker.installed.insert(call.id)
        }
        worker.sent(.init(callID: call.id, chunk: chunk))
        timeline?.queued(to: worker)
        worker.itemsQueued += range.count
        worker.queue(chunk.payload.bytes)
    }

    /// How long a release frame may wait for other frames to the same worker.
    static let releaseDelayNanos: UInt64 = 20_000_000

    /// Writes, soon, frames left queued (releases) to workers that got nothing since.
    func scheduleQueuedFramesFlush() {
        guard !queuedFramesFlushScheduled else { return }
        queuedFramesFlushScheduled = true
        loop.schedule(afterNanoseconds: Self.releaseDelayNanos) { [weak self] in
            guard let self else { return }
            queuedFramesFlushScheduled = false
            flushQueuedFrames()
        }
    }

    /// Writes every worker's queued frames.
    func flushQueuedFrames() {
        for case let worker? in slots where worker.hasQueuedFrames {
            do {
                try worker.flush()
            } catch {
                // The socket broke: the worker's exit settles its chunks (they are in flight).
                // Settling may respawn, log and hand out more work: on the loop thread.
                let error = MultiprocessingError.from(error)
                loop.onLoopThread { [self] in brokenChannel(worker, error) }
            }
        }
    }

    /// The call of the chunk a worker is running: the in-flight chunk its progress page
    /// names (it may have run earlier ones and still hold their results), else the first.
    func runningCallID(of worker: WorkerConnection) -> UInt64? {
        if let snapshot = worker.progressPage?.snapshot(), snapshot.phase != .idle,
            let running = worker.inFlight.first(where: { $0.chunk.id == snapshot.chunkID })
        {
            return running.callID
        }
        return worker.inFlight.first?.callID
    }
}
#endif
