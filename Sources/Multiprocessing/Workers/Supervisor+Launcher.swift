#if os(Linux)
// What the launcher reports (see Launchers/README.md): workers that connect later (on other
// nodes), their exits, start failures, nodes that join or are lost.
extension Supervisor: WorkerLauncherDelegate {
    var launcherMayStartWorkers: Bool { state == .starting || state == .running }

    var launcherPoolIsStarting: Bool { state == .starting }

    func launcherAddedSlots(_ count: Int, node: String) -> Range<Int> {
        let first = slots.count
        for _ in 0..<count {
            slots.append(nil)
            startFailures.append(0)
            statistics.addSlot(host: node)
        }
        return first..<slots.count
    }

    /// A worker on another node connected: its channel is watched; its exit is reported by
    /// its launcher (``launcherWorkerExited(id:_:)``).
    func launcherConnected(_ launched: LaunchedWorker) {
        let worker = adopt(launched)
        do {
            try registerChannel(worker)
        } catch {
            brokenChannel(worker, .from(error))
            return
        }
        settings.logger.debug("worker connected", metadata: Self.metadata(worker))
        startHandshakeTimer(worker)
    }

    /// A worker could not be started: fail the pool's start, or try again.
    func launcherFailedToStart(slot: Int, _ error: MultiprocessingError) {
        startFailures[slot] += 1
        lastStartError = error
        if state == .starting {
            failStart(error)
        } else if state == .running && !retiredSlots.contains(slot) {
            respawn(slot: slot, replacing: "worker \(slot)")
        }
    }

    /// A worker's host reported its exit. It is settled once its channel has ended too: what
    /// it sent before its exit travels on the channel, and may arrive after the report.
    func launcherWorkerExited(id: UInt64, _ report: ClusterMessage.WorkerExited) {
        guard let worker = allWorkers.first(where: { !$0.ownsProcess && $0.launchID == id }) else { return }
        worker.exitReport = report
        worker.phase = .exiting
        if worker.pid == 0 { worker.pid = report.pid }
        if report.timedOut, let limit = settings.itemTimeoutNanos { worker.stopReason = .timedOut(limit) }
        guard worker.hasChannel else {
            workerEnded(worker, report.termination)
            return
        }
        // Its channel ends too (the process is gone), and what it sent before comes first.
        // Unless a process the function started holds the socket open: then it is closed
        // here after a grace period.
        loop.schedule(afterNanoseconds: Self.exitGraceNanos) { [weak self, weak worker] in
            guard let self, let worker, !worker.ended else { return }
            closeChannel(of: worker)
        }
    }

    /// A node is lost with every worker on it. Their work is retried elsewhere or fails
    /// (``settleLostWork(_:_:)``), and their slots stay empty.
    func launcherLostNode(_ node: String, slots lost: [Int], startError: MultiprocessingError) {
        retiredSlots.formUnion(lost)
        statistics.lost.formUnion(lost)
        if state == .starting { failStart(startError) }
        let gone = Set(lost)
        for worker in allWorkers where gone.contains(worker.slot) && !worker.ownsProcess {
            worker.closeChannel(loop: loop)
            // A worker whose exit its host reported before the node went keeps that report.
            workerEnded(worker, worker.exitReport?.termination ?? .lost(node: node))
        }
        if state == .running && workerCount == 0 {
            let error = MultiprocessingError(
                .nodesUnavailable,
                "every node of the pool was lost (last: \(node)); no worker is left, and the pool takes no more work. Check the job's output for why the nodes failed"
            )
            unusable = error
            failAllCalls(error)
        } else {
            finishClosingIfDone()
        }
    }

    func launcherFailed(_ error: MultiprocessingError) { failStart(error) }

    /// The only use of `Pool/` left here: a signal a node passed on reaches the program's
    /// handling of signals (``Interruption``), as if this process had received it.
    func launcherForwardedSignal(_ signal: Int32, from origin: String) {
        Interruption.shared.forwarded(signal, from: origin)
    }

    func launcherEnded() { finishClosingIfDone() }
}
#endif
