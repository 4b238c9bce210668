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
        launcher.close()
        killTimer = loop.schedule(afterNanoseconds: Self.exitGraceNanos) { [weak self] in
            guard let self else { return }
            // Workers on other nodes went with their hosts' connections (``WorkerLauncher/close()``).
            for worker in allWorkers where worker.ownsProcess {
                if worker.stopReason == nil { worker.stopReason = .closing }
                worker.kill()
            }
            killTimer = launcher.endAfterGrace(loop: loop)
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
        guard state == .closing, slots.allSatisfy({ $0 == nil }), departed.isEmpty, launcher.hasEnded
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
