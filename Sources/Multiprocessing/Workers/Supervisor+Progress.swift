#if os(Linux)
// Timeouts, stalled workers and progress output.
extension Supervisor {
    // MARK: - Timeouts

    /// Checks, a few times per timeout period, whether a worker has held its work past the
    /// limit: the clock of the chunk it is on (``WorkerConnection/heldWork(now:)``, moved
    /// forward by each item's start in its progress page). Such a worker is killed; its
    /// death fails the item it was on as timed out, and sends the rest of its work elsewhere.
    /// A worker frozen while idle (stopped, or stuck in the kernel) is caught the same way:
    /// the chunk sent to it starts its clock.
    func scheduleTimeoutCheck(_ limit: UInt64) {
        let interval = min(max(limit / 8, 2_000_000), 100_000_000)
        loop.schedule(afterNanoseconds: interval) { [weak self] in
            guard let self, state == .starting || state == .running else { return }
            let now = Platform.monotonicNanos()
            for case let worker? in slots
            where worker.phase == .ready && worker.stopReason == nil && worker.ownsProcess {
                // A worker on another node: its host checks each item's time itself.
                if let held = worker.heldWork(now: now), WorkClock.isOverdue(heldNanos: held.nanos, limit: limit) {
                    worker.stopReason = .timedOut(limit)
                    worker.kill()
                }
            }
            scheduleTimeoutCheck(limit)
        }
    }

    /// Workers that have held the same work far longer than chunks have been taking (and at
    /// least ``SupervisorSettings/stallReportNanos``): named in progress lines and in the report, so that a
    /// wait without a timeout is never silent.
    func stalledWorkers(now: UInt64) -> [String] {
        var lines: [String] = []
        for case let worker? in slots where worker.phase == .ready {
            guard let held = worker.heldWork(now: now) else { continue }
            let typical = calls[held.callID]?.schedule.lastChunkNanos
            guard
                WorkClock.isStalled(
                    heldNanos: held.nanos, typicalChunkNanos: typical, reportAfterNanos: settings.stallReportNanos)
            else { continue }
            let pace = typical.map { "; its call's chunks have been taking \(Self.formatDuration($0))" } ?? ""
            lines.append(
                "\(worker.identity) has held items \(held.items.lowerBound)..<\(held.items.upperBound) for \(Self.formatDuration(held.nanos))\(pace); it may be stuck (ProcessPool.Options.itemTimeout stops such items)"
            )
        }
        return lines
    }

    // MARK: - Progress

    /// The progress mode of a call: its own, or the pool's.
    func progressMode(_ call: CallRecord) -> ProgressMode { call.progress ?? settings.progress }

    func startProgressTimer() {
        guard !progressTimerRunning else { return }
        progressTimerRunning = true
        scheduleProgress()
    }

    /// Redraws the bar five times a second, or prints a line every
    /// ``SupervisorSettings/progressLineIntervalNanos``, for the calls in progress.
    func scheduleProgress() {
        let fast =
            settings.onProgress != nil || calls.values.contains { progressMode($0) == .bar }
            || settings.progress == .bar
        let interval: UInt64 =
            fast ? 200_000_000 : max(min(settings.progressLineIntervalNanos / 4, 1_000_000_000), 10_000_000)
        loop.schedule(afterNanoseconds: interval) { [weak self] in
            guard let self, state == .starting || state == .running else { return }
            let now = Platform.monotonicNanos()
            let active = calls.values.sorted(by: { $0.id < $1.id })
            if let onProgress = settings.onProgress {
                for call in active { onProgress(CallProgress(call.snapshot, finished: false)) }
            }
            if let first = active.first(where: { progressMode($0) == .bar }) {
                Platform.writeToStandardError("\r" + first.snapshot.bar() + "\u{1B}[K")
            }
            var printed = false
            for call in active
            where progressMode(call) == .lines
                && call.progressLineDue(now: now, interval: settings.progressLineIntervalNanos)
            {
                printProgressLine(call, event: "progress")
                printed = true
            }
            if printed {
                let stamp = ProgressSnapshot.timestamp()
                let text = stalledWorkers(now: now).map { "\(stamp) swift-multiprocessing: \($0)\n" }.joined()
                if !text.isEmpty { loop.onLoopThread { Platform.writeToStandardError(text) } }
            }
            scheduleProgress()
        }
    }

    func printProgressLine(_ call: CallRecord, event: String) {
        call.lastLineNanos = Platform.monotonicNanos()
        let line =
            "\(ProgressSnapshot.timestamp()) swift-multiprocessing: \(call.snapshot.line(event: event, workers: workerCount))\n"
        loop.onLoopThread { Platform.writeToStandardError(line) }
    }
}
#endif
