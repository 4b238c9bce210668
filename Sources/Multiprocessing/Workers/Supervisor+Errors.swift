#if os(Linux)
// The texts of the errors the supervisor gives: what a user reads when a worker dies,
// cannot start, or the pool is closed.
extension Supervisor {
    // MARK: - Error texts

    /// The error for a call made after a signal stopped the pool.
    static func stoppedEarlier(_ interruption: MultiprocessingError) -> MultiprocessingError {
        let name = interruption.interruptSignal.map(Platform.signalName) ?? "a signal"
        return MultiprocessingError(
            .interrupted,
            "the pool was stopped earlier, when the program received \(name); it takes no more work. Create a new pool to go on",
            interruptSignal: interruption.interruptSignal)
    }

    static func closedError() -> MultiprocessingError {
        MultiprocessingError(
            .poolClosed,
            "the pool is closed: create a new pool, or keep using this one inside its withProcessPool { } body")
    }

    /// The error of the last attempt, listing the earlier ones when there were retries.
    static func withAttempts(_ last: MultiprocessingError, _ previous: [MultiprocessingError]) -> MultiprocessingError {
        guard !previous.isEmpty else { return last }
        let all = previous + [last]
        let attempts = all.enumerated().map { "attempt \($0.offset + 1): \($0.element.message)" }
        let message = "all \(all.count) attempts failed — " + attempts.joined(separator: " | ")
        return MultiprocessingError(
            last.code, message, itemIndex: last.itemIndex, worker: last.worker, termination: last.termination,
            underlying: last.underlying)
    }

    func failureError(
        _ worker: WorkerConnection, _ termination: ProcessTermination, index: Int?, phase: WorkerPosition.Phase,
        range: Range<Int>
    ) -> MultiprocessingError {
        // What the worker was doing, and how a timeout of it reads.
        let what: String
        let overran: String
        switch (index, phase) {
        case (let index?, .decoding):
            what = "decoding the input of item \(index)"
            overran = what + " took"
        case (let index?, .encoding):
            what = "encoding the result of item \(index)"
            overran = what + " took"
        case (let index?, _):
            what = "running item \(index)"
            overran = "item \(index) ran"
        case (nil, _):
            what = "running items \(range.lowerBound)..<\(range.upperBound)"
            overran = what + " took"
        }
        if case .timedOut(let limit) = worker.stopReason {
            return MultiprocessingError(
                .timedOut,
                "\(overran) longer than the per-item timeout of \(Self.formatSeconds(limit)); \(worker.identity) was stopped and replaced",
                itemIndex: index, worker: worker.identity, termination: termination)
        }
        var message = "\(worker.identity) \(worker.endDescription(termination)) while \(what)"
        if let fatal = worker.fatalMessage { message += "; it reported: \(fatal.message)" }
        if worker.stopReason == nil, let words = worker.lastWords { message += "; its last lines on stderr: \(words)" }
        if let broken = worker.connectionError { message += "; the connection had failed first: \(broken.message)" }
        if termination.lostNode != nil {
            message +=
                workerCount > 0
                ? ". The pool goes on with the workers of the other nodes" : ". No node of the pool is left"
            message +=
                settings.retries == 0
                ? "; set ProcessPool.Options.retries to run such items again on the remaining nodes." : "."
        } else {
            message += ". The worker has been replaced; anything it printed went to this program's stdout or stderr."
        }
        return MultiprocessingError(
            .workerDied, message, itemIndex: index, worker: worker.identity, termination: termination,
            underlying: worker.connectionError)
    }

    /// `850 µs`, `12 ms`, `3.4 s`, `2:05` (minutes and seconds).
    static func formatDuration(_ nanos: UInt64) -> String {
        if nanos < 1_000_000 { return "\(nanos / 1000) µs" }
        if nanos < 1_000_000_000 { return "\(nanos / 1_000_000) ms" }
        return ProgressSnapshot.duration(Double(nanos) / 1e9)
    }

    /// `2 s`, `0.5 s` (``describeSeconds(_:)``).
    static func formatSeconds(_ nanos: UInt64) -> String { describeSeconds(nanos) }

    func startError(_ worker: WorkerConnection, _ termination: ProcessTermination) -> MultiprocessingError {
        if let report = worker.exitReport, !report.message.isEmpty {
            // Its host on another node could not start it, and said why.
            return MultiprocessingError(.spawnFailed, report.message, worker: worker.identity, termination: termination)
        }
        if termination == .exited(WorkerMode.bootstrapMissingStatus)
            || worker.fatalMessage?.code == MultiprocessingError.Code.bootstrapMissing.description
        {
            return Self.bootstrapMissingError(
                detail:
                    "the worker process (pid \(worker.pid)) ran your program's main, which reached pool creation without calling it"
            )
        }
        // With an initializer, a death between the hello and ready happened while it ran
        // (its frame may not even have been written: the worker was already gone).
        if (settings.initializerFrame != nil && worker.saidHello && !worker.becameReady)
            || termination == .exited(WorkerMode.initializerFailedStatus)
        {
            var message = "the pool's worker initializer failed in \(worker.identity)"
            if let fatal = worker.fatalMessage {
                message += ": \(fatal.message)"
            } else {
                message += ": the worker \(termination) while running it"
            }
            return MultiprocessingError(
                .initializerFailed, message + ". No worker can start until the initializer succeeds.",
                worker: worker.identity, termination: termination)
        }
        if let error = worker.connectionError { return error }
        var message = "\(worker.identity) \(termination) before completing the start-up handshake"
        if let fatal = worker.fatalMessage { message += ": \(fatal.message)" }
        if let words = worker.lastWords { message += "; its last lines on stderr: \(words)" }
        message += ". Its error output, if any, is above."
        return MultiprocessingError(.handshakeFailed, message, worker: worker.identity, termination: termination)
    }

    static func bootstrapMissingError(detail: String) -> MultiprocessingError {
        MultiprocessingError(
            .bootstrapMissing,
            "Multiprocessing.bootstrap() was not called: \(detail). Make `Multiprocessing.bootstrap()` the first line of your program's main (before any pool is created): worker processes are started from the same executable and enter worker mode there."
        )
    }
}
#endif
