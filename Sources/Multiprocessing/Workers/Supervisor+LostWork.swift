#if os(Linux)
// What happens to the work of a worker that died, and to its slot.
extension Supervisor {
    // MARK: - Lost work

    /// Settles the chunks of a worker that died, as ``LostWork/fate(of:_:heldAt:position:nodeLost:cancelled:)``
    /// decides: in the chunk it was on, only the item it was decoding, running or encoding
    /// fails (or is retried); the items before and after it, and every chunk waiting behind
    /// it, go back to their calls for other workers.
    func settleLostWork(_ worker: WorkerConnection, _ termination: ProcessTermination) {
        let position = worker.position()
        let nodeLost = termination.lostNode != nil
        let cancelled = worker.stopReason == .cancelled
        for (heldAt, inFlight) in worker.inFlight.enumerated() {
            guard let call = calls[inFlight.callID] else { continue }
            let chunk = inFlight.chunk
            switch LostWork.fate(
                of: chunk.id, chunk.payload.task, heldAt: heldAt, position: position, nodeLost: nodeLost,
                cancelled: cancelled)
            {
            case .requeue:
                call.schedule.split(chunk, requeue: [chunk], failed: 0)
                enqueue(call)
            case .fail(let offsets, let itemIndex, let phase):
                let error = failureError(worker, termination, index: itemIndex, phase: phase, range: chunk.range)
                settle(call, chunk, failing: offsets, error: error)
            }
        }
        worker.forgetInFlight()
    }

    /// Fails (or retries) the run offsets `failing` of `chunk`, and sends the rest of it again
    /// (``LostWork/settle(_:failing:error:retries:attempts:)`` decides which).
    func settle(
        _ call: CallRecord, _ chunk: CallSchedule<TaskFrame>.Chunk, failing: Range<Int>, error: MultiprocessingError
    ) {
        let frame = chunk.payload
        let settlement = LostWork.settle(
            frame.task, failing: failing, error: error, retries: settings.retries, attempts: &call.attempts)
        let items = settlement.failedItems
        if settlement.retried {
            call.retried += 1
            statistics.retries += 1
        } else {
            call.done += items.count
            call.failed += items.count
            statistics.failures += items.count
            statistics.items += items.count
        }
        timeline?.settled(items: items, retried: settlement.retried)
        var requeue: [CallSchedule<TaskFrame>.Chunk] = []
        for piece in settlement.resend {
            let chunkID = nextChunkID
            nextChunkID += 1
            guard let narrowed = try? frame.narrowed(to: piece, chunkID: chunkID) else { continue }
            requeue.append(.init(id: chunkID, range: narrowed.task.itemRange, payload: narrowed))
        }
        call.schedule.split(chunk, requeue: requeue, failed: settlement.retried ? 0 : 1)
        if !settlement.retried {
            post(call, .chunkFailed(range: items, Self.withAttempts(error, settlement.earlierAttempts)))
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
