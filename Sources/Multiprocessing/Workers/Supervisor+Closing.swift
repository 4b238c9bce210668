#if os(Linux)
// Closing the pool: workers stopped, then reaped; the timeline written.
extension Supervisor {

    // MARK: - Closing

    func beginClosing() {
        guard state == .starting || state == .running else {
            finishClosingIfDone()
            return
        }
        state = .closing
        failAllCalls(Self.closedError())
        for worker in allWorkers {
            worker.phase = .exiting
            worker.closeChannel(loop: loop)
        }
        if let cluster { closeCluster(cluster) }
        killTimer = loop.schedule(afterNanoseconds: Self.exitGraceNanos) { [weak self] in
            guard let self else { return }
            for worker in allWorkers where worker.remoteHost == nil {
                if worker.stopReason == nil { worker.stopReason = .closing }
                Platform.kill(worker.pid, 9)
            }
            if let step = cluster?.step, cluster?.stepEnded == false {
                // The hosts were told to stop (their connections closed) and have not:
                // let Slurm end the step (srun passes SIGTERM on, then SIGKILL).
                Platform.kill(step.pid, Platform.terminateSignal)
                killTimer = loop.schedule(afterNanoseconds: Self.exitGraceNanos * 5) { Platform.kill(step.pid, 9) }
            }
        }
        finishClosingIfDone()
    }

    /// Writes the timeline's files, when the pool keeps a timeline: at close, and when a
    /// signal interrupts the pool (with what it has then, in case the program exits before
    /// the pool has closed; `final` is false for an interrupted pool, both times). A failure
    /// is a warning on stderr.
    func writeTimeline(final: Bool) {
        guard let timeline else { return }
        do {
            try timeline.write(report: currentReport(), final: final)
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: could not write the timeline \(timeline.path): \(describe(error))\n")
        }
    }

    func finishClosingIfDone() {
        guard state == .closing, slots.allSatisfy({ $0 == nil }), departed.isEmpty, cluster?.stepEnded ?? true
        else { return }
        state = .closed
        if let killTimer { loop.cancelTimer(killTimer) }
        writeTimeline(final: interruption == nil)
        let waiters = closeWaiters
        closeWaiters.removeAll()
        let keptAlive = keptAliveUntilClosed
        keptAliveUntilClosed = nil
        loop.stop {
            for waiter in waiters { waiter.resume() }
            _ = keptAlive  // released once the loop has stopped
        }
    }
}
#endif
