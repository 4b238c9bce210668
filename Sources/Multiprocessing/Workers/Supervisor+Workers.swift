import Logging

#if os(Linux)
// Starting workers, reading their frames, and their ends (see README.md, "Parent side").
extension Supervisor {
    // MARK: - Workers

    /// Starts a worker for `slot` through the launcher. A worker whose channel is open at
    /// once (a local process) is watched now; others connect later
    /// (``launcherConnected(_:)``).
    func spawn(slot: Int) throws {
        guard let launched = try launcher.startWorker(slot: slot) else { return }
        let worker = adopt(launched)
        settings.logger.debug("worker started", metadata: Self.metadata(worker))
        do {
            try registerChannel(worker)
            if worker.ownsProcess {
                worker.processToken = try loop.register(
                    worker.processHandle, .readable,
                    EventHandler { [weak self, unowned worker] _, _, _ in self?.processExited(worker) })
            }
            try worker.output?.watch(loop: loop)
        } catch {
            worker.kill()
            throw error
        }
        startHandshakeTimer(worker)
    }

    /// A worker its launcher started: it takes its slot.
    func adopt(_ launched: LaunchedWorker) -> WorkerConnection {
        let worker = WorkerConnection(launched, launcher: launcher, maximumPayload: maximumPayload)
        slots[launched.slot] = worker
        timeline?.workerStarted(worker)
        return worker
    }

    /// How the workers were counted: for a multi-node pool, per node.
    func startedDescription() -> String { launcher.describe(workers: slots.count) }

    /// Watches a worker's channel (local socket pair or remote TCP alike).
    func registerChannel(_ worker: WorkerConnection) throws {
        worker.connection.token = try loop.register(
            worker.channel, [.readable, .writable, .edgeTriggered],
            EventHandler { [weak self, unowned worker] readable, writable, hangup in
                self?.channelEvent(worker, readable: readable, writable: writable, hangup: hangup)
            })
    }

    /// Kills a worker that does not complete the handshake (and initializer) in time.
    func startHandshakeTimer(_ worker: WorkerConnection) {
        let timeout = settings.handshakeTimeoutNanos
        worker.handshakeTimer = loop.schedule(afterNanoseconds: timeout) { [unowned worker] in
            guard worker.phase == .handshaking || worker.phase == .initializing else { return }
            worker.connectionError = MultiprocessingError(
                .handshakeFailed,
                "\(worker.identity) did not become ready within \(timeout / 1_000_000_000) s: does your program do slow work before calling Multiprocessing.bootstrap()? Call it first in main (or raise ProcessPool.Options.startTimeoutSeconds for a slow initializer)",
                worker: worker.identity)
            worker.kill()
        }
    }

    func channelEvent(_ worker: WorkerConnection, readable: Bool, writable: Bool, hangup: Bool) {
        guard worker.hasChannel else { return }
        do {
            if writable { try worker.flush() }
            if readable || hangup {
                wakeupNanos = Platform.monotonicNanos()
                let open = try worker.readAvailable(into: &readBuffer)
                try processFrames(worker)
                if !open { brokenChannel(worker, nil) }
                // Hand out work once for all the results read in this wakeup, not once each.
                pump()
            }
        } catch {
            brokenChannel(worker, .from(error))
        }
    }

    /// The channel ended or broke: stop using the worker and make sure its process ends;
    /// its exit (reported through the process handle) settles its chunks.
    func brokenChannel(_ worker: WorkerConnection, _ error: MultiprocessingError?) {
        if let error, worker.connectionError == nil {
            worker.connectionError = error
            worker.kill()
        }
        worker.phase = .exiting
        closeChannel(of: worker)
    }

    /// Closes a worker's channel. A worker whose launcher has already reported its exit (a
    /// remote one) is settled now: its channel was the last thing outstanding.
    func closeChannel(of worker: WorkerConnection) {
        worker.closeChannel(loop: loop)
        if let report = worker.exitReport { workerEnded(worker, report.termination) }
    }

    func processFrames(_ worker: WorkerConnection) throws {
        while worker.hasChannel, let frame = try worker.assembler.next() {
            try handle(frame, from: worker)
        }
    }

    func handle(_ frame: Frame, from worker: WorkerConnection) throws {
        switch frame.kind {
        case .hello:
            guard worker.phase == .handshaking else {
                throw MultiprocessingError(.malformedFrame, "\(worker.identity) sent a second hello")
            }
            let hello = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return try Message.Hello(&reader)
            }
            guard hello.buildID == buildID else {
                throw MultiprocessingError(
                    .protocolMismatch,
                    "\(worker.identity) is a different build of the program (build id differs): rebuild, and run the same binary everywhere"
                )
            }
            worker.host = hello.host
            worker.saidHello = true
            if worker.pid == 0 { worker.pid = hello.pid }  // a worker on another node
            if let initializer = settings.initializerFrame {
                worker.phase = .initializing
                try worker.send(initializer)
            } else {
                workerIsReady(worker)
            }
        case .ready:
            guard worker.phase == .initializing else {
                throw MultiprocessingError(.malformedFrame, "\(worker.identity) said ready out of turn")
            }
            workerIsReady(worker)
        case .result:
            let (header, offset) = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return (try Message.Result(&reader), reader.offset)
            }
            guard let first = worker.inFlight.first, first.callID == header.callID, first.chunk.id == header.chunkID
            else {
                throw MultiprocessingError(.malformedFrame, "\(worker.identity) answered a chunk it was not running")
            }
            worker.answeredOldest(at: wakeupNanos)
            worker.itemsRun += first.chunk.range.count
            statistics.recordChunk(
                slot: worker.slot, items: first.chunk.range, computeNanos: header.computeNanos,
                failed: header.failedCount)
            timeline?.chunk(
                from: worker, callID: header.callID, items: first.chunk.range, header: header, readNanos: wakeupNanos)
            if let call = calls[header.callID] {
                call.done += first.chunk.range.count
                call.failed += header.failedCount
                call.schedule.completed(first.chunk.range, computeNanos: header.computeNanos)
                post(
                    call,
                    .results(
                        header, range: first.chunk.range, payload: frame.payload, offset: offset,
                        worker: worker.identity))
            }
            if worker.phase == .exiting && worker.inFlight.isEmpty {
                closeChannel(of: worker)  // a recycled worker has answered its last chunk
            }
            recycleIfDue(worker)  // the caller (channelEvent) pumps once for all frames read
        case .installFailed, .fatal:
            let failure = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return try Message.Failure(&reader, kind: frame.kind)
            }
            if frame.kind == .fatal {
                worker.fatalMessage = failure
                return
            }
            if let call = calls[failure.callID] {
                let code: MultiprocessingError.Code =
                    failure.code == MultiprocessingError.Code.typeNotFound.description ? .typeNotFound : .decodingFailed
                post(
                    call,
                    .failed(
                        MultiprocessingError(
                            code, "\(worker.identity) could not install the call's function: \(failure.message)",
                            worker: worker.identity)))
            }
        case .install, .task, .release, .initialize, .challenge, .authenticate, .authenticated, .hostHello,
            .startWorker, .stopWorker, .workerExited, .hostSignal:
            throw MultiprocessingError(
                .malformedFrame, "\(worker.identity) sent a \(frame.kind) frame, which only the parent sends")
        }
    }

    static func metadata(_ worker: WorkerConnection) -> Logger.Metadata {
        ["worker": "\(worker.slot)", "pid": "\(worker.pid)", "host": "\(worker.host)"]
    }

    func workerIsReady(_ worker: WorkerConnection) {
        settings.logger.debug("worker ready", metadata: Self.metadata(worker))
        worker.phase = .ready
        worker.becameReady = true
        if let timer = worker.handshakeTimer { loop.cancelTimer(timer) }
        startFailures[worker.slot] = 0
        if state == .starting, slots.allSatisfy({ $0?.phase == .ready }), launcher.startIsComplete {
            state = .running
            startWaiter?.resume(returning: (slots.count, startedDescription()))
            startWaiter = nil
        }
        pump()
    }

    /// A worker that has run its share of items (``SupervisorSettings/maximumItemsPerWorker``)
    /// leaves its slot to a fresh worker, and exits once its last chunk is answered.
    func recycleIfDue(_ worker: WorkerConnection) {
        guard let limit = settings.maximumItemsPerWorker, worker.itemsRun >= limit, state == .running,
            slots[worker.slot] === worker
        else { return }
        slots[worker.slot] = nil
        departed.append(worker)
        worker.phase = .exiting
        if worker.inFlight.isEmpty { closeChannel(of: worker) }
        do {
            try spawn(slot: worker.slot)
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: could not start a worker to replace recycled \(worker.identity): \(describe(error))\n"
            )
        }
    }

    func processExited(_ worker: WorkerConnection) {
        // Frames the worker wrote before it exited come first.
        if worker.hasChannel {
            channelEvent(worker, readable: true, writable: false, hangup: true)
            if worker.hasChannel { brokenChannel(worker, nil) }
        }
        // Read before the reap: the exited worker (a zombie until then) keeps its final times.
        let cpu = Platform.processCPUTime(pid: worker.pid)
        guard let termination = Self.reapIfExited(worker.processHandle) else { return }
        statistics.workerEnded(slot: worker.slot, cpu: cpu)
        worker.closeProcessHandle(loop: loop)
        workerEnded(worker, termination)
    }

    /// A worker process is gone (reaped here, or reported by its node's host, or lost
    /// with its node): settle its work, and fill its slot again.
    func workerEnded(_ worker: WorkerConnection, _ termination: ProcessTermination) {
        guard !worker.ended else { return }
        worker.ended = true
        if let timer = worker.handshakeTimer { loop.cancelTimer(timer) }
        let inSlot = slots[worker.slot] === worker
        if inSlot { slots[worker.slot] = nil }
        var metadata = Self.metadata(worker)
        metadata["termination"] = "\(worker.endDescription(termination))"
        if state == .running && inSlot && worker.stopReason != .cancelled {
            if case .timedOut = worker.stopReason {
                settings.logger.notice("worker stopped: its item timed out", metadata: metadata)
            } else if termination.lostNode != nil {
                settings.logger.notice("worker lost with its node", metadata: metadata)
            } else {
                settings.logger.notice("worker crashed", metadata: metadata)
            }
        } else {
            settings.logger.debug("worker exited", metadata: metadata)
        }
        departed.removeAll { $0 === worker }
        timeline?.workerEnded(worker, termination, running: state == .running && inSlot)

        switch state {
        case .starting:
            failStart(startError(worker, termination))
        case .running:
            settleLostWork(worker, termination)
            if inSlot && !retiredSlots.contains(worker.slot) { respawn(after: worker, termination) }
            pump()
        case .closing:
            settleLostWork(worker, termination)
            finishClosingIfDone()
        case .closed:
            break
        }
    }
}
#endif
