import Logging

/// What the pool asks of the engine that runs its chunks: worker processes
/// (``Supervisor``) or threads of this process (``ThreadEngine``). Everything above it
/// is shared by both: the call records, chunking (``CallSchedule``), the events a call
/// receives and their ordering, the journal, progress and the report. Only where a chunk
/// runs differs.
protocol PoolEngine: AnyObject, Sendable {
    /// Starts the workers; returns their number and a description, once every one is ready.
    func start() async throws -> (workers: Int, description: String)
    /// Registers a call and starts handing out its chunks.
    func submit(_ call: CallRecord)
    /// The pool's figures since it started.
    func report() async -> PoolReport
    /// Forgets a call; with `stopRunningWork`, its work still running is stopped (a worker
    /// process is killed; a thread cannot be, see ``ThreadEngine``).
    func finish(callID: UInt64, stopRunningWork: Bool)
    /// The consumer of a stream took the results of `chunks` chunks; 0 when it counted them
    /// in the call's ``StreamCredit`` and the engine, its window full, asked to be woken.
    func consumed(callID: UInt64, chunks: Int)
    /// Stops the pool because the program received a signal.
    func interrupt(_ error: MultiprocessingError)
    /// Stops the workers and returns once they are gone.
    func close() async
    /// Starts closing without waiting.
    func closeDetached()
}

extension PoolEngine {
    func finish(callID: UInt64) { finish(callID: callID, stopRunningWork: false) }
}

extension Supervisor: PoolEngine {}

/// A chunk made for the threads engine: its inputs, not encoded, and the code that runs
/// the call's function on them (made by the pool, where the function's type is known).
struct InProcessChunk: Sendable {
    /// Runs the chunk on the calling thread, as `worker`; never throws (an item that
    /// throws fails alone, inside the result).
    let run: @Sendable (_ worker: MultiprocessingError.WorkerIdentity) -> ComputedChunk
}

/// A chunk run in this process: its outcome, not encoded (a `ResultsCore<Output>.Chunk`
/// of the call's output type, read back by the pool), and its figures.
struct ComputedChunk: @unchecked Sendable {
    let range: Range<Int>
    /// The chunk's outcome; `@unchecked` because it is typed by the call, and every
    /// `Output` is `Sendable`.
    let outcome: Any
    let computeNanos: UInt64
    let failed: Int
}

/// Runs a pool's chunks on threads of this process (`ProcessPool.Options.engine = .threads`
/// or `MP_ENGINE=threads`); see `README.md` in this folder.
///
/// One operating-system thread per worker slot, never a thread of the Swift concurrency
/// pool: each takes the next chunk (under the engine's lock, with the same schedule as the
/// process engine), runs it with no encoding at all, and hands its results to the call.
/// What threads cannot do: a crash in the function ends the program; a running chunk
/// cannot be stopped, so cancelling a call drops its results and hands out no more of
/// its chunks, while a chunk already running finishes first (``close()`` waits for that
/// at most ``exitGraceNanos``, then leaves the thread to end on its own).
///
/// The pool's entry points (from any task) take the engine's lock only for bookkeeping:
/// it is never held while a function runs. It is held while a stream's items are read
/// from the program's sequence and while a journal appends a chunk's results, the work
/// the process engine does on its loop thread, so a caller may wait that long for it.
final class ThreadEngine: PoolEngine, @unchecked Sendable {
    /// What the engine takes from ``ProcessPool/Options``.
    struct Settings {
        var workerCount: Int
        var initializer: (any WorkerInitializer)?
        var progress: ProgressMode = .off
        var progressLineIntervalNanos: UInt64 = 10_000_000_000
        var onProgress: (@Sendable (CallProgress) -> Void)?
        var logger = Logger(label: "swift-multiprocessing")
        var stallReportNanos: UInt64 = 30_000_000_000
    }

    enum State { case starting, running, closing, closed }

    /// How long ``close()`` waits for chunks still running: as long as the process engine
    /// gives its workers before SIGKILL.
    static let exitGraceNanos = Supervisor.exitGraceNanos

    let settings: Settings
    private let identities: [MultiprocessingError.WorkerIdentity]
    /// Guards everything below, and is where idle threads sleep.
    private let lock = ConditionLock()
    private var state = State.starting
    private var calls: [UInt64: CallRecord] = [:]
    private var callOrder: [UInt64] = []
    private var nextChunkID: UInt64 = 1
    /// Threads started and not yet ended.
    private var liveThreads = 0
    /// What each slot's thread runs now: the call, the items, since when.
    private var held: [(callID: UInt64, items: Range<Int>, since: UInt64)?]
    private var statistics: PoolStatistics
    /// Each slot's thread (its kernel id), while it runs: the report reads its CPU time.
    private var threadIDs: [Int32?]
    private var pendingDeliveries: [CallRecord] = []
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var interruption: MultiprocessingError?
    private var progressTimerRunning = false

    init(settings: Settings) {
        self.settings = settings
        identities = (0..<settings.workerCount).map {
            MultiprocessingError.WorkerIdentity(slot: $0, pid: Platform.processID, host: Platform.hostName)
        }
        held = Array(repeating: nil, count: settings.workerCount)
        statistics = PoolStatistics(workers: settings.workerCount, onThreads: true)
        threadIDs = Array(repeating: nil, count: settings.workerCount)
    }

    // MARK: - PoolEngine

    /// Runs the initializer once (threads share the process: once is once for all), then
    /// starts the threads.
    /// - Throws: ``MultiprocessingError/Code/initializerFailed`` when the initializer
    ///   throws; ``MultiprocessingError/Code/spawnFailed`` when a thread cannot be started.
    func start() async throws -> (workers: Int, description: String) {
        if let initializer = settings.initializer {
            let runner = InitializerRunner(
                body: { try await initializer.initialize() }, typeName: String(reflecting: type(of: initializer)))
            if let failure = await runner.run() { throw failure }
        }
        lock.lock()
        defer { lock.unlock() }
        if let interruption { throw Supervisor.stoppedEarlier(interruption) }
        for slot in 0..<settings.workerCount {
            do {
                try OSThread.start(name: "mp-thread-\(slot)", stackBytes: Supervisor.threadStackBytes) { [self] in
                    work(slot: slot)
                }
                liveThreads += 1
            } catch {
                state = .closing
                lock.broadcast()
                throw MultiprocessingError(
                    .spawnFailed, "could not start worker thread \(slot): \(describe(error))",
                    underlying: MultiprocessingError.from(error))
            }
        }
        state = .running
        if settings.progress != .off || settings.onProgress != nil { startProgressTimer() }
        let count = settings.workerCount
        settings.logger.debug(
            "worker threads started", metadata: ["workers": "\(count)", "pid": "\(Platform.processID)"])
        return (count, "\(count) thread\(count == 1 ? "" : "s") of this process")
    }

    func submit(_ call: CallRecord) {
        lock.lock()
        defer {
            deliver(takeDeliveries())
            lock.unlock()
        }
        guard state == .running else {
            post(call, .failed(interruption.map(Supervisor.stoppedEarlier) ?? Supervisor.closedError()))
            forget(call)
            return
        }
        calls[call.id] = call
        callOrder.append(call.id)
        let mode = call.progress ?? settings.progress
        if mode == .lines { printProgressLine(call, event: "started") }
        if mode != .off { startProgressTimer() }
        lock.broadcast()
    }

    func report() async -> PoolReport {
        lock.lock()
        defer { lock.unlock() }
        let live = threadIDs.enumerated().compactMap { slot, tid -> (slot: Int, cpu: Platform.CPUSeconds)? in
            guard let tid, let cpu = Platform.threadCPUTime(tid: tid) else { return nil }
            return (slot, cpu)
        }
        var report = statistics.report(liveCPU: live)
        report.stalled = stalledWorkers(now: Platform.monotonicNanos())
        return report
    }

    /// Forgets a call. A chunk of it still running on a thread runs to its end (a thread
    /// cannot be stopped); its results are dropped.
    func finish(callID: UInt64, stopRunningWork: Bool) {
        lock.lock()
        guard let call = calls.removeValue(forKey: callID) else {
            lock.unlock()
            return
        }
        callOrder.removeAll { $0 == callID }
        forget(call)
        let mode = call.progress ?? settings.progress
        let snapshot = call.snapshot
        if mode == .lines { printProgressLine(call, event: stopRunningWork ? "stopped" : "finished") }
        lock.unlock()
        settings.onProgress?(CallProgress(snapshot, finished: true))
        if mode == .bar { Platform.writeToStandardError("\r" + snapshot.bar() + "\u{1B}[K\n") }
    }

    func consumed(callID: UInt64, chunks: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard let call = calls[callID] else { return }
        call.schedule.consumed(chunks: chunks)
        if !callOrder.contains(callID) && !call.schedule.isExhausted { callOrder.append(callID) }
        lock.broadcast()
    }

    func interrupt(_ error: MultiprocessingError) {
        lock.lock()
        guard state == .starting || state == .running else {
            lock.unlock()
            return
        }
        interruption = error
        for call in calls.values.sorted(by: { $0.id < $1.id }) {
            post(call, .failed(error))
            forget(call)
        }
        calls.removeAll()
        callOrder.removeAll()
        beginClosing()
        lock.unlock()
    }

    /// Fails the calls still running with ``MultiprocessingError/Code/poolClosed`` and
    /// stops the threads: each ends after the chunk it runs. Returns once every thread has
    /// ended, or after ``exitGraceNanos`` when a chunk runs on (its thread is left to end
    /// on its own; its results go nowhere).
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            defer { lock.unlock() }
            beginClosing()
            if state == .closed {
                continuation.resume()
                return
            }
            closeWaiters.append(continuation)
            Task { [self] in
                try? await Task.sleep(nanoseconds: Self.exitGraceNanos)
                lock.lock()
                let waiters = closeWaiters
                closeWaiters.removeAll()
                lock.unlock()
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    func closeDetached() {
        lock.lock()
        beginClosing()
        lock.unlock()
    }

    // MARK: - The threads

    /// One worker thread: takes chunks until the pool closes. Tiny chunks are taken several
    /// at once, as the process engine sends them (see ``batchSize(after:)``): their results
    /// then wake the waiting task once, not once each.
    private func work(slot: Int) {
        lock.lock()
        threadIDs[slot] = Platform.currentThreadID()
        var batch: [(call: CallRecord, job: InProcessChunk, range: Range<Int>)] = []
        var computed: [ComputedChunk] = []
        while state == .starting || state == .running {
            guard state == .running, let first = nextChunk() else {
                deliver(takeDeliveries())
                lock.wait()
                continue
            }
            batch.append(first)
            let size = batchSize(after: first.call)
            while batch.count < size, let next = nextChunk() { batch.append(next) }
            let last = batch[batch.count - 1]
            let items = last.call === first.call ? first.range.lowerBound..<last.range.upperBound : first.range
            held[slot] = (first.call.id, items, Platform.monotonicNanos())
            deliver(takeDeliveries())
            lock.unlock()
            for chunk in batch { computed.append(chunk.job.run(identities[slot])) }
            lock.lock()
            held[slot] = nil
            for (chunk, result) in zip(batch, computed) {
                let range = chunk.range
                statistics.recordChunk(
                    slot: slot, items: range, computeNanos: result.computeNanos, failed: result.failed)
                let call = chunk.call
                if calls[call.id] === call {
                    call.done += range.count
                    call.failed += result.failed
                    call.schedule.completed(range, computeNanos: result.computeNanos)
                    post(call, .computed(result))
                }
            }
            batch.removeAll(keepingCapacity: true)
            computed.removeAll(keepingCapacity: true)
            deliver(takeDeliveries())
        }
        threadIDs[slot] = nil
        statistics.workerEnded(slot: slot, cpu: Platform.currentThreadCPUTime())
        liveThreads -= 1
        var waiters: [CheckedContinuation<Void, Never>] = []
        if liveThreads == 0 && state == .closing {
            state = .closed
            waiters = closeWaiters
            closeWaiters.removeAll()
        }
        lock.unlock()
        for waiter in waiters { waiter.resume() }
    }

    /// How many chunks a thread takes at once after taking one of `call`
    /// (``QueueDepth/threadBatch(lastChunkNanos:)``: the process engine's limits for a
    /// worker's batch of tiny chunks, for the same reason: a round trip per tiny chunk
    /// costs more than the chunk).
    private func batchSize(after call: CallRecord) -> Int {
        QueueDepth.threadBatch(lastChunkNanos: call.schedule.lastChunkNanos)
    }

    /// The next chunk to run: new items from the oldest call that has some and room in its
    /// window (the same order as the process engine's). Called with the lock held; a
    /// stream's items are read from the program's sequence here, one thread at a time.
    private func nextChunk() -> (call: CallRecord, job: InProcessChunk, range: Range<Int>)? {
        var index = 0
        while index < callOrder.count {
            guard let call = calls[callOrder[index]] else {
                callOrder.remove(at: index)
                continue
            }
            if let new = call.takeNewChunk(atMost: .max, nextChunkID: &nextChunkID, post: { post(call, $0) }) {
                guard case .inProcess(_, let job) = new.produced else {
                    preconditionFailure("a task frame was made for the threads engine")
                }
                return (call, job, new.range)
            }
            if call.schedule.isExhausted {
                callOrder.remove(at: index)
            } else {
                index += 1  // its window is full: the consumer will make room
            }
        }
        return nil
    }

    // MARK: - Delivering events (lock held unless said)

    private func post(_ call: CallRecord, _ event: CallEvent) {
        if call.outbox.isEmpty { pendingDeliveries.append(call) }
        call.outbox.append(event)
    }

    /// The events posted so far, taken from their calls.
    private func takeDeliveries() -> [(CallRecord, [CallEvent])] {
        guard !pendingDeliveries.isEmpty else { return [] }
        let taken = pendingDeliveries.map { call in
            let events = call.outbox
            call.outbox.removeAll()
            return (call, events)
        }
        pendingDeliveries.removeAll(keepingCapacity: true)
        return taken
    }

    /// Hands events to their calls, under the lock: a journal writes a call's results one
    /// chunk at a time, as the process engine's single loop thread does.
    private func deliver(_ deliveries: [(CallRecord, [CallEvent])]) {
        for (call, events) in deliveries where !events.isEmpty { call.deliver(events) }
    }

    /// Delivers what is left for `call`, then ends its event stream.
    private func forget(_ call: CallRecord) {
        let events = call.outbox
        call.outbox.removeAll()
        pendingDeliveries.removeAll { $0 === call }
        if !events.isEmpty { call.deliver(events) }
        call.onForget()
    }

    /// Fails every call with ``MultiprocessingError/Code/poolClosed`` and wakes the threads
    /// so that they end.
    private func beginClosing() {
        guard state == .starting || state == .running else { return }
        for call in calls.values.sorted(by: { $0.id < $1.id }) {
            post(call, .failed(Supervisor.closedError()))
            forget(call)
        }
        calls.removeAll()
        callOrder.removeAll()
        state = liveThreads == 0 ? .closed : .closing
        lock.broadcast()
    }

    // MARK: - Progress and the report (lock held)

    /// Threads that have held the same work for long (see ``Supervisor/stalledWorkers(now:)``).
    private func stalledWorkers(now: UInt64) -> [String] {
        var lines: [String] = []
        for (slot, work) in held.enumerated() {
            guard let work else { continue }
            let nanos = now &- work.since
            let typical = calls[work.callID]?.schedule.lastChunkNanos
            guard
                WorkClock.isStalled(
                    heldNanos: nanos, typicalChunkNanos: typical, reportAfterNanos: settings.stallReportNanos)
            else { continue }
            let pace = typical.map { "; its call's chunks have been taking \(Supervisor.formatDuration($0))" } ?? ""
            lines.append(
                "\(identities[slot]) (a thread) has held items \(work.items.lowerBound)..<\(work.items.upperBound) for \(Supervisor.formatDuration(nanos))\(pace); it may be stuck (a thread cannot be stopped: the processes engine with ProcessPool.Options.itemTimeout can stop such items)"
            )
        }
        return lines
    }

    private func printProgressLine(_ call: CallRecord, event: String) {
        call.lastLineNanos = Platform.monotonicNanos()
        Platform.writeToStandardError(
            "\(ProgressSnapshot.timestamp()) swift-multiprocessing: \(call.snapshot.line(event: event, workers: settings.workerCount))\n"
        )
    }

    /// Redraws the bar five times a second, or prints a line every
    /// ``Settings/progressLineIntervalNanos``, as the process engine does; on a task, which
    /// sleeps between rounds and never blocks.
    private func startProgressTimer() {
        guard !progressTimerRunning else { return }
        progressTimerRunning = true
        Task { [weak self] in
            while let interval = self?.progressRound() {
                try? await Task.sleep(nanoseconds: interval)
            }
        }
    }

    /// One round of progress output; the time to the next, or `nil` once the pool closes.
    private func progressRound() -> UInt64? {
        lock.lock()
        guard state == .starting || state == .running else {
            lock.unlock()
            return nil
        }
        let now = Platform.monotonicNanos()
        let active = calls.values.sorted(by: { $0.id < $1.id })
        let snapshots = active.map { CallProgress($0.snapshot, finished: false) }
        let bar = active.first(where: { ($0.progress ?? settings.progress) == .bar }).map(\.snapshot)
        var printed = false
        for call in active
        where (call.progress ?? settings.progress) == .lines
            && call.progressLineDue(now: now, interval: settings.progressLineIntervalNanos)
        {
            printProgressLine(call, event: "progress")
            printed = true
        }
        if printed {
            let stamp = ProgressSnapshot.timestamp()
            let text = stalledWorkers(now: now).map { "\(stamp) swift-multiprocessing: \($0)\n" }.joined()
            if !text.isEmpty { Platform.writeToStandardError(text) }
        }
        let fast =
            settings.onProgress != nil || settings.progress == .bar
            || active.contains { ($0.progress ?? settings.progress) == .bar }
        lock.unlock()
        if let onProgress = settings.onProgress { for progress in snapshots { onProgress(progress) } }
        if let bar { Platform.writeToStandardError("\r" + bar.bar() + "\u{1B}[K") }
        return fast ? 200_000_000 : max(min(settings.progressLineIntervalNanos / 4, 1_000_000_000), 10_000_000)
    }
}

extension ThreadEngine {
    /// Runs an `async` function's chunk from one of the engine's own threads: the chunk
    /// runs as a task (on the concurrency pool, where it suspends as it awaits, never
    /// blocking it), and this thread, which is not one of the pool's, sleeps until it ends.
    static func wait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = WaitBox<T>()
        Task { box.set(await body()) }
        return box.take()
    }

    private final class WaitBox<T: Sendable>: @unchecked Sendable {
        private let lock = ConditionLock()
        private var value: T?

        func set(_ value: T) {
            lock.lock()
            self.value = value
            lock.signal()
            lock.unlock()
        }

        func take() -> T {
            lock.lock()
            defer { lock.unlock() }
            while true {
                if let value { return value }
                lock.wait()
            }
        }
    }
}
