#if os(Linux)
// What happens to the work of a worker that died, and to its slot.
extension Supervisor {
    // MARK: - Lost work

    /// Settles the chunks of a worker that died. In the chunk it was on, only the item it
    /// was decoding, running or encoding fails (or is retried); the items before and after
    /// it, and every chunk waiting behind it, go back to their calls for other workers.
    func settleLostWork(_ worker: WorkerConnection, _ termination: ProcessTermination) {
        let snapshot = worker.progressSnapshot()
        for (position, inFlight) in worker.inFlight.enumerated() {
            guard let call = calls[inFlight.callID] else { continue }
            let chunk = inFlight.chunk
            let task = chunk.payload.task
            if case .lost = termination, position == 0, worker.stopReason != .cancelled {
                // Its node is gone, and with it the record of which item was running:
                // the whole chunk is the unit that failed.
                let error = failureError(worker, termination, index: nil, phase: .running, range: chunk.range)
                settle(call, chunk, failing: task.runStart..<task.runEnd, error: error)
                continue
            }
            guard snapshot.chunkID == chunk.id, snapshot.phase != .idle, worker.stopReason != .cancelled,
                task.runStart <= snapshot.offset, snapshot.offset < task.runEnd
            else {
                // Never started, or run with its result still held or half written by the
                // worker (a worker answers a run of short chunks with one write), or its
                // call was cancelled: send it elsewhere as it is.
                call.schedule.split(chunk, requeue: [chunk], failed: 0)
                enqueue(call)
                continue
            }
            let k = snapshot.offset
            let error = failureError(
                worker, termination, index: task.firstIndex + k, phase: snapshot.phase, range: chunk.range)
            settle(call, chunk, failing: k..<(k + 1), error: error)
        }
        worker.forgetInFlight()
    }

    /// Fails (or retries) the run offsets `failing` of `chunk`, and sends the rest of it again.
    func settle(
        _ call: CallRecord, _ chunk: CallSchedule<TaskFrame>.Chunk, failing: Range<Int>, error: MultiprocessingError
    ) {
        let frame = chunk.payload
        let task = frame.task
        var pieces: [Range<Int>] = []
        if task.runStart < failing.lowerBound { pieces.append(task.runStart..<failing.lowerBound) }
        if failing.upperBound < task.runEnd { pieces.append(failing.upperBound..<task.runEnd) }

        let firstFailed = task.firstIndex + failing.lowerBound
        let previous = call.attempts[firstFailed] ?? []
        let retry = previous.count < settings.retries
        if retry {
            call.attempts[firstFailed] = previous + [error]
            pieces.append(failing)
            call.retried += 1
            statistics.retries += 1
            timeline?.settled(items: firstFailed..<(firstFailed + failing.count), retried: true)
        } else {
            call.attempts[firstFailed] = nil
            call.done += failing.count
            call.failed += failing.count
            statistics.failures += failing.count
            statistics.items += failing.count
            timeline?.settled(items: firstFailed..<(firstFailed + failing.count), retried: false)
        }
        var requeue: [CallSchedule<TaskFrame>.Chunk] = []
        for piece in pieces {
            let chunkID = nextChunkID
            nextChunkID += 1
            guard let narrowed = try? frame.narrowed(to: piece, chunkID: chunkID) else { continue }
            requeue.append(.init(id: chunkID, range: narrowed.task.itemRange, payload: narrowed))
        }
        call.schedule.split(chunk, requeue: requeue, failed: retry ? 0 : 1)
        if !retry {
            let range = (task.firstIndex + failing.lowerBound)..<(task.firstIndex + failing.upperBound)
            post(call, .chunkFailed(range: range, Self.withAttempts(error, previous)))
        }
        enqueue(call)
    }

    func enqueue(_ call: CallRecord) {
        if !callOrder.contains(call.id) { callOrder.append(call.id) }
    }

    func respawn(after worker: WorkerConnection, _ termination: ProcessTermination) {
        if !worker.becameReady || worker.fatalMessage != nil {
            startFailures[worker.slot] += 1
            lastStartError = startError(worker, termination)
        }
        respawn(slot: worker.slot, replacing: worker.identity.description)
    }

    /// Fills `slot` again, unless its workers keep failing to start.
    func respawn(slot: Int, replacing what: String) {
        if startFailures[slot] >= Self.maximumConsecutiveStartFailures {
            let last = lastStartError ?? MultiprocessingError(.handshakeFailed, "\(what) failed to start")
            Platform.writeToStandardError(
                "swift-multiprocessing: worker slot \(slot) failed to start \(startFailures[slot]) times in a row (last: \(last.message)); the pool goes on with \(slots.compactMap { $0 }.count) workers\n"
            )
            if slots.allSatisfy({ $0 == nil }) {
                let error = MultiprocessingError(
                    last.code == .initializerFailed ? .initializerFailed : .workerDied,
                    "no worker of the pool is left: workers could not be restarted (last: \(last.message))")
                unusable = error
                failAllCalls(error)
            }
            return
        }
        statistics.respawns += 1
        timeline?.respawning(slot: slot)
        settings.logger.debug("worker respawned", metadata: ["worker": "\(slot)"])
        do {
            try spawn(slot: slot)
        } catch {
            startFailures[slot] += 1
            Platform.writeToStandardError(
                "swift-multiprocessing: could not replace \(what): \(describe(error))\n")
        }
    }

    func failAllCalls(_ error: MultiprocessingError) {
        for call in calls.values {
            post(call, .failed(error))
            forget(call)
        }
        calls.removeAll()
        callOrder.removeAll()
    }


    func failStart(_ error: any Error) {
        guard state == .starting else { return }
        startWaiter?.resume(throwing: error)
        startWaiter = nil
        beginClosing()
    }
}
#endif
