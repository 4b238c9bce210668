public import Logging
import Synchronization

/// A pool of worker processes that run ``ParallelFunction`` values, like Python's
/// `multiprocessing.Pool`.
///
/// ```swift
/// try await withProcessPool { pool in
///     let squares = try await pool.map(Square(), [1, 2, 3, 4])
/// }
/// ```
///
/// Prefer ``withProcessPool(workers:options:isolation:_:)``, which closes the pool on every exit
/// path. A pool made with ``init(workers:options:)`` must be closed with ``close()``; one
/// that is dropped unclosed stops and reaps its workers in the background.
///
/// Workers are processes of this same executable, started when the pool is created
/// (each a direct child of this process) and stopped when it closes. When a worker dies,
/// the items it was running fail with ``MultiprocessingError/Code/workerDied`` and a
/// fresh worker takes its place; the pool stays usable. With ``Options/engine`` set to
/// ``Engine/threads`` (or `MP_ENGINE=threads`), the workers are threads of this process
/// instead, with the same calls; ``Engine`` says what differs.
///
/// In a Slurm job of several nodes, a pool created without a worker count by a program
/// running in the batch script itself (not under `srun`) spans every node: it starts one
/// worker host per node as one `srun` step, and those hosts start the workers, which
/// connect back over authenticated TCP. The calls are the same. When a node is lost, the
/// items its workers were running fail (or are retried, see ``Options/retries``) with a
/// ``ProcessTermination/lost(node:)`` termination, and the pool goes on with the other
/// nodes; when no node is left, calls fail with ``MultiprocessingError/Code/nodesUnavailable``.
public final class ProcessPool: Sendable {
    /// Settings of a pool beyond its worker count.
    public struct Options: Sendable {
        /// The hard limit on one message between the pool and a worker, in bytes
        /// (default 256 MiB). A chunk of inputs or results above it fails with
        /// ``MultiprocessingError/Code/frameTooLarge``; nothing larger is ever allocated
        /// on the receiving side.
        public var maximumFrameBytes: Int = Frame.defaultMaximumPayload
        /// How long a new worker may take to start, complete the handshake and run the
        /// initializer (default 30 s).
        public var startTimeoutSeconds: Double = 30
        /// Extra attempts for an item whose worker died or timed out (default 0: none).
        /// A retried item runs again on another, healthy worker; when every attempt fails,
        /// the error lists each attempt. An error your function throws is its answer and
        /// is not retried.
        public var retries: Int = 0
        /// The longest one item may run (default: no limit). An item past it is stopped
        /// with its worker (SIGKILL) and fails with ``MultiprocessingError/Code/timedOut``
        /// (or is retried, see ``retries``); the worker is replaced.
        public var itemTimeout: Duration?
        /// Runs once in each worker before its first item (Python's `initializer`).
        public var initializer: (any WorkerInitializer)?
        /// Replaces a worker with a fresh process once it has run this many items
        /// (Python's `maxtasksperchild`, counted in items; chunks are cut so that no worker
        /// runs more). Default: never.
        public var maximumItemsPerWorker: Int?
        /// A file to which `map` (and `starmap`, `apply`) append the results they have
        /// received when the program is interrupted by SIGINT or SIGTERM (Slurm's time
        /// limit, `scancel`): one JSON line per finished item, see the README. Results JSON
        /// cannot hold (NaN) are left out and counted in the error's
        /// ``MultiprocessingError/unwrittenResults``. The path is checked when the pool is
        /// created (opened for appending, never truncated; a file created for the check is
        /// removed): if it cannot be written, a warning on stderr names it and the reason,
        /// and the pool starts anyway. Default: none.
        public var interruptResultsPath: String?
        /// Progress of the pool's calls on stderr (default `.off`). `MP_PROGRESS=off|bar|lines`
        /// in the environment overrides it.
        public var progress: ProgressMode = .off
        /// How often `lines` progress prints a line while a call runs (default 10 s).
        public var progressLineInterval: Duration = .seconds(10)
        /// Where the pool logs worker lifecycle events (swift-log): started, ready, exited
        /// and respawned at `debug`; crashed and timed out at `notice`. Nothing is logged
        /// per item. The program chooses the handler with `LoggingSystem.bootstrap`.
        public var logger = Logger(label: "swift-multiprocessing")
        /// How long a worker may hold the same work, with no ``itemTimeout``, before the
        /// progress lines and ``ProcessPool/report()`` name it as possibly stuck (default
        /// 30 s; it must also be 20 times the call's last chunk). Nothing is stopped.
        public var stallReportAfter: Duration = .seconds(30)
        /// Called on the pool's thread five times a second for each call in progress, and
        /// once when a call ends (`finished`), for programs that draw their own display.
        /// Keep it short: it runs on the thread that serves the workers.
        public var onProgress: (@Sendable (CallProgress) -> Void)?
        /// A timeline file: when the pool closes (and when SIGINT or SIGTERM interrupts it,
        /// with what it has then), it writes there a trace of every chunk on every worker in
        /// the Chrome trace event format (open it in Perfetto, `chrome://tracing` or
        /// Speedscope), and beside it a picture, a self-contained HTML file (the same name
        /// with `.html` for `.json`, or `.html` appended). See the README, "Progress and
        /// reports". `MP_TIMELINE=path` in the environment turns it on without a code
        /// change; a path set here wins. A file that cannot be written is a warning on
        /// stderr. Default: none (then the per-chunk cost is one check).
        public var timelinePath: String?
        /// A journal file: each finished item's result is appended to it as it arrives, and a
        /// rerun of the program with the same journal takes the items it holds instead of
        /// computing them again (see the README, "Durable maps"). `MP_JOURNAL=path` in the
        /// environment turns it on without a code change; a path set here wins. Every pool
        /// of the program that names the same path shares it. Default: none.
        public var journalPath: String?
        /// How often the journal is made durable (`fsync`) while results arrive (default
        /// 2 s): a crash of the machine, not of the program, loses at most this much.
        /// The journal is also synced when the pool closes and on SIGINT/SIGTERM.
        public var journalSyncInterval: Duration = .seconds(2)
        /// Reuse results that another build of the program journaled (default `false`: a
        /// rebuilt function may compute something else). `MP_JOURNAL_ANY_BUILD=1` sets it.
        public var journalReusesOtherBuilds = false
        /// In a Slurm job with a journal, how many times the job may be restarted
        /// (`SLURM_RESTART_COUNT`) by a requeue before its time limit; past it, SIGUSR1 is
        /// noted and the run goes on to its limit. `MP_MAX_RESTARTS` in the environment sets
        /// it without a code change; a value set here wins. Default: 100. See the README,
        /// "Jobs that outlive their time limit".
        public var maximumRestarts: Int?
        /// Where the workers run: worker processes (``Engine/processes``) or threads of this
        /// process (``Engine/threads``). `nil` (the default) takes `MP_ENGINE=processes|threads`
        /// from the environment, else processes; an engine set here wins over the variable.
        /// See ``Engine`` for what threads cannot do.
        public var engine: Engine?

        /// The default options.
        public init() {}

        /// Options with the given settings (each `nil` keeps the default).
        public init(
            retries: Int = 0, itemTimeout: Duration? = nil, initializer: (any WorkerInitializer)? = nil,
            maximumItemsPerWorker: Int? = nil
        ) {
            self.retries = retries
            self.itemTimeout = itemTimeout
            self.initializer = initializer
            self.maximumItemsPerWorker = maximumItemsPerWorker
        }
    }

    /// The number of worker processes (in a multi-node pool, on all its nodes together).
    public let workerCount: Int
    /// Why the pool has ``workerCount`` workers.
    public let workerCountDecision: WorkerCount
    /// The options the pool was created with.
    public let options: Options
    /// Where the pool's workers run (``Options/engine``, else `MP_ENGINE`, else processes).
    public let engine: Engine
    let supervisor: any PoolEngine
    /// The journal, when one is on.
    let journal: PoolJournal?
    /// Items of an array task's shared call taken from the share journals (see `ProcessPool+Array.swift`).
    let arrayReused = Atomic<Int>(0)
    let nextCallID = Atomic<UInt64>(1)
    private let closed = Atomic<Bool>(false)
    /// The calls taken and not finished, for ``closeAndJoin()``.
    let outstanding = OutstandingCalls()

    /// Starts a pool and waits until every worker is ready.
    ///
    /// - Parameters:
    ///   - workers: the number of worker processes; `nil` applies the CPU rules of
    ///     ``WorkerCount`` (affinity mask, cgroup quota, Slurm variables, `MP_WORKERS`),
    ///     on every node of a multi-node job when the program runs in its batch script
    ///     (`MP_NODES=1` keeps it on this node). More workers than CPUs is allowed.
    ///   - options: limits and timeouts.
    /// - Throws: ``MultiprocessingError`` with code
    ///   ``MultiprocessingError/Code/bootstrapMissing`` when the program never called
    ///   ``Multiprocessing/bootstrap()``; ``MultiprocessingError/Code/insideWorker`` when
    ///   called inside a worker; ``MultiprocessingError/Code/invalidArgument`` for a
    ///   count or option out of range; ``MultiprocessingError/Code/spawnFailed`` or
    ///   ``MultiprocessingError/Code/handshakeFailed`` when a worker cannot start (a
    ///   worker that dies while starting fails the creation, naming its exit status);
    ///   ``MultiprocessingError/Code/initializerFailed`` when the initializer throws or
    ///   its worker dies in it (reported once, naming your error);
    ///   ``MultiprocessingError/Code/nodesUnavailable`` when a multi-node pool cannot start
    ///   its worker hosts (the message quotes `srun`).
    public init(workers: Int? = nil, options: Options = Options()) async throws {
        if WorkerMode.isWorker {
            throw MultiprocessingError(
                .insideWorker,
                "a pool cannot be created inside a worker process (your function is already running in a pool's worker): do the work directly in the function, or create the pool in the parent"
            )
        }
        if let value = Platform.environment(WorkerMode.environmentVariable), !value.isEmpty {
            // Started as a worker, but main reached here without bootstrap(): never spawn.
            WorkerMode.refuseUnbootstrappedWorker()
        }
        guard WorkerMode.bootstrapped else {
            throw Supervisor.bootstrapMissingError(detail: "this program created a pool without it")
        }
        if let workers, workers < 1 {
            throw MultiprocessingError(.invalidArgument, "a pool needs at least 1 worker; \(workers) was given")
        }
        guard options.maximumFrameBytes > 0, options.maximumFrameBytes <= Frame.absoluteMaximumPayload else {
            throw MultiprocessingError(
                .invalidArgument,
                "maximumFrameBytes must be between 1 and \(Frame.absoluteMaximumPayload); \(options.maximumFrameBytes) was given"
            )
        }
        guard options.retries >= 0 else {
            throw MultiprocessingError(.invalidArgument, "retries must be 0 or more; \(options.retries) was given")
        }
        if let limit = options.maximumItemsPerWorker, limit < 1 {
            throw MultiprocessingError(.invalidArgument, "maximumItemsPerWorker must be at least 1; \(limit) was given")
        }
        guard options.startTimeoutSeconds.isFinite, options.startTimeoutSeconds > 0 else {
            throw MultiprocessingError(
                .invalidArgument,
                "startTimeoutSeconds must be a positive number; \(options.startTimeoutSeconds) was given")
        }
        let engine = try Engine.resolve(options, environment: Platform.environment("MP_ENGINE"))
        var timeoutNanos: UInt64?
        if let timeout = options.itemTimeout {
            guard timeout > .zero else {
                throw MultiprocessingError(.invalidArgument, "itemTimeout must be positive; \(timeout) was given")
            }
            timeoutNanos = Self.nanoseconds(timeout)
        }
        let initializerFrame = try options.initializer.map { try $0.initializeFrame() }
        let (progress, progressWarning) = ProgressMode.resolve(
            options.progress, environment: Platform.environment("MP_PROGRESS"),
            stderrIsTerminal: Platform.standardErrorIsTerminal)
        if let progressWarning { Platform.writeToStandardError("swift-multiprocessing: warning: \(progressWarning)\n") }
        let intervalNanos = Self.nanoseconds(options.progressLineInterval)
        let decision = WorkerCount.resolve(
            explicit: workers, environment: WorkerCount.relevantEnvironment(), cpus: WorkerCount.SystemCPUs.current())
        #if os(Linux)
        let (placement, advice) =
            engine == .threads
            ? (Placement.local, nil)
            : Placement.decide(explicitWorkers: workers, environment: Placement.relevantEnvironment())
        if let advice { Placement.report(advice) }
        #else
        let placement = Placement.local
        #endif
        if placement == .local { decision.reportWarningsOnce() }
        if let path = options.interruptResultsPath, let problem = ResultsFile.problem(appendingTo: path) {
            // Found now rather than at the time limit; the pool is still worth running.
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: interruptResultsPath \(path) cannot be written (\(problem)); the pool starts anyway, but if the program is interrupted its results will be only in the error's partialResults. Fix the path (its directory must exist and be writable)\n"
            )
        }
        let timelinePath = options.timelinePath ?? Platform.environment("MP_TIMELINE").flatMap { $0.isEmpty ? nil : $0 }
        if engine == .threads, let path = timelinePath {
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: the timeline \(path) is not written with the threads engine (it traces worker processes); use the processes engine for one\n"
            )
        }
        if engine != .threads, let path = timelinePath, let problem = ResultsFile.problem(appendingTo: path) {
            // Found now rather than when a long job ends.
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: the timeline \(path) cannot be written (\(problem)); the pool starts anyway and tries again when it closes. Fix the path (its directory must exist and be writable)\n"
            )
        }
        self.options = options
        journal = try await PoolJournal.resolve(options)
        Requeue.shared.watchIfWanted(journal: journal != nil, maximumRestarts: options.maximumRestarts)
        Platform.ignoreBrokenPipe()
        self.engine = engine
        let threads: (any PoolEngine)? =
            engine == .threads
            ? ThreadEngine(
                settings: ThreadEngine.Settings(
                    workerCount: decision.count, initializer: options.initializer, progress: progress,
                    progressLineIntervalNanos: max(intervalNanos, 10_000_000), onProgress: options.onProgress,
                    logger: options.logger, stallReportNanos: Self.nanoseconds(options.stallReportAfter)))
            : nil
        let supervisor =
            try threads
            ?? Supervisor(
                settings: SupervisorSettings(
                    workerCount: decision.count, maximumPayload: options.maximumFrameBytes,
                    handshakeTimeoutNanos: UInt64(max(options.startTimeoutSeconds, 0.001) * 1e9),
                    retries: options.retries, itemTimeoutNanos: timeoutNanos, initializerFrame: initializerFrame,
                    maximumItemsPerWorker: options.maximumItemsPerWorker, progress: progress,
                    progressLineIntervalNanos: max(intervalNanos, 10_000_000), logger: options.logger,
                    onProgress: options.onProgress, placement: placement,
                    stallReportNanos: Self.nanoseconds(options.stallReportAfter), timelinePath: timelinePath))
        self.supervisor = supervisor
        Interruption.shared.register(supervisor)
        do {
            let started = try await supervisor.start()
            workerCount = started.workers
            workerCountDecision =
                placement == .local
                ? decision
                : WorkerCount(count: started.workers, source: .slurmNodes, reason: started.description, ignored: [])
        } catch {
            await supervisor.close()
            Interruption.shared.unregister(supervisor)
            throw error
        }
    }

    /// A duration in whole nanoseconds (negative durations count as zero).
    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }

    deinit {
        if !closed.load(ordering: .acquiring) { supervisor.closeDetached() }
        Interruption.shared.unregister(supervisor)
    }

    /// What the pool did since it was created: items, failures, retries, respawns, rate,
    /// per-worker items, busy time and utilisation, and the slowest chunks.
    public func report() async -> PoolReport {
        await supervisor.report()
    }

    /// Stops the workers and waits until they have exited. Calls still running fail with
    /// ``MultiprocessingError/Code/poolClosed``. Workers get two seconds to exit after
    /// their channel closes, then SIGKILL; none is left behind, not even as a zombie.
    /// Closing twice is harmless. (Python's `terminate()`, which leaving a `with Pool()`
    /// block calls; ``closeAndJoin()`` lets submitted work finish first.)
    public func close() async {
        closed.store(true, ordering: .releasing)
        await supervisor.close()
        await journal?.journal.sync()
        Interruption.shared.unregister(supervisor)
    }

    /// Lets the work already submitted finish, then closes the pool (Python's
    /// `pool.close(); pool.join()`).
    ///
    /// From the moment it is called, the pool takes no new work: calls started after it
    /// fail with ``MultiprocessingError/Code/poolClosed``. It waits for every call taken
    /// before: `map`, `starmap`, `apply` and `mapReduce` calls in progress, ``applyAsync(_:_:)``
    /// calls submitted and not yet awaited (their results stay in their ``PendingCall``),
    /// and streams, until their consumer has read them to the end or dropped them (a
    /// stream holds back work its consumer has not taken: read it from another task, or
    /// it is never done). Then it closes the pool as ``close()`` does.
    ///
    /// When a worker dies during the wait, its items fail with
    /// ``MultiprocessingError/Code/workerDied`` (or are retried, see ``Options/retries``)
    /// and a fresh worker takes its place, as at any time; their calls end with those
    /// failures and this still returns. Without ``Options/itemTimeout`` an item that never
    /// ends keeps it waiting, as in Python. Cancelling the task that calls it stops the
    /// wait and closes at once: calls still running then fail with `poolClosed`.
    public func closeAndJoin() async {
        await outstanding.join()
        await close()
    }

    /// Applies `function` to every input, in parallel, and returns the outputs in input
    /// order (Python's `Pool.map`).
    ///
    /// Inputs are split into chunks sent to the workers; the function value is sent to
    /// each worker once per call, not per chunk.
    ///
    /// - Parameters:
    ///   - function: the function value (its stored properties are its state).
    ///   - inputs: the inputs; read once, up front.
    ///   - chunkSize: items per chunk; `nil` (the default) sizes chunks automatically
    ///     (about 2 ms of work each, smaller toward the end so uneven items balance).
    ///   - progress: progress output for this call, overriding the pool's
    ///     ``Options/progress`` (`MP_PROGRESS` still overrides both).
    /// - Returns: one output per input, in input order.
    /// - Throws: at the first failed item (the rest of the call is cancelled), a
    ///   ``MultiprocessingError`` with the item's index and worker:
    ///   ``MultiprocessingError/Code/functionThrew`` with your error's type and
    ///   description, or ``MultiprocessingError/Code/workerDied`` naming the exit status
    ///   or signal when the worker died (the worker is replaced). The error's
    ///   ``MultiprocessingError/partialResults(as:)`` holds the results already received.
    ///   Also ``MultiprocessingError/Code/typeNotFound`` for a function type declared
    ///   inside a function body or `private`, ``MultiprocessingError/Code/poolClosed`` on a closed pool,
    ///   and ``MultiprocessingError/Code/cancelled`` when the calling task is cancelled.
    public func map<F: WorkerFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, chunkSize: Int? = nil, progress: ProgressMode? = nil
    )
        async throws -> [F.Output]
    {
        try await map(function, inputs, chunkSize: chunkSize, progress: progress, admitted: false)
    }

    /// ``map(_:_:chunkSize:progress:)``; `admitted`: the call was counted in already (an
    /// `applyAsync` submitted before ``closeAndJoin()`` began), so a join does not refuse it.
    /// `shared`: an array task's first call is shared across the array (not `apply`'s).
    func map<F: WorkerFunction>(
        _ function: F, _ inputs: some Sequence<F.Input>, chunkSize: Int?, progress: ProgressMode?, admitted: Bool,
        shared: Bool = true
    )
        async throws -> [F.Output]
    {
        let items = Array(inputs)
        try checkOpen(admitted: admitted)
        try Self.check(chunkSize: chunkSize)
        let typeName = try F.checkFindableByName()
        if items.isEmpty { return [] }
        if shared, !admitted, let share = try ArrayTask.takeShare() {
            return try await arrayMap(
                share, function, items, typeName: typeName, chunkSize: chunkSize, progress: progress, name: "map")
        }
        if let journal {
            return try await journaledMap(
                journal, function, items, typeName: typeName, chunkSize: chunkSize, progress: progress, name: "map")
        }
        return try await runMap(
            function, items, typeName: typeName, chunkSize: chunkSize, progress: progress, admitted: admitted)
    }

    /// Runs a map call over `items`. With a journal, `tap` journals the results, and
    /// `merge` turns the partial results of these items into those of the whole call
    /// (for the error and the interrupt file). `admitted`: see ``map(_:_:chunkSize:progress:admitted:)``.
    func runMap<F: WorkerFunction>(
        _ function: F, _ items: [F.Input], typeName: String, chunkSize: Int?, progress: ProgressMode?,
        admitted: Bool = false, tap: MapJournalTap<F>? = nil, merge: (([F.Output?]) -> [F.Output?])? = nil
    ) async throws -> [F.Output] {
        let onDeliver: (@Sendable ([CallEvent]) -> Void)? = tap.map { tap in
            { @Sendable events in tap.deliver(events) }
        }
        let frameLimit = options.maximumFrameBytes
        let raw = ItemizedValues.isRaw(F.Input.self)
        let inProcess = inProcessChunks(function)
        let (callID, events) = try startCall(
            function, name: "map", typeName: typeName, totalItems: items.count, chunkSize: chunkSize, window: nil,
            progress: progress, admitted: admitted,
            produce: { [sizeHint = FrameSizeHint()] callID, chunkID, first, count in
                let count = chunkSize == nil ? sizeHint.automaticChunkItems(count) : count
                if let inProcess { return inProcess(first, items[first..<(first + count)], sizeHint) }
                return Self.taskFrame(
                    callID: callID, chunkID: chunkID, first: first, inputs: items[first..<(first + count)], raw: raw,
                    limit: frameLimit, sizeHint: sizeHint)
            }, onDeliver: onDeliver)
        var results = OrderedResults<F.Output>(count: items.count)
        let supervisor = self.supervisor
        var failure: MultiprocessingError?
        await withTaskCancellationHandler {
            receiving: for await batch in events {
                for event in batch {
                    do {
                        switch event {
                        case .results(let header, let range, let payload, let offset, let worker):
                            try Self.decodeResults(
                                F.Output.self, header, range, payload, offset, worker, into: &results)
                        case .computed(let computed):
                            try Self.add(computed.chunk(as: F.Output.self), into: &results)
                        case .chunkFailed(let range, let error):
                            throw range.count == 1 ? error.forItem(range.lowerBound) : error
                        case .failed(let error):
                            throw error
                        case .ended:
                            break
                        }
                    } catch {
                        failure = MultiprocessingError.from(error)
                        break receiving
                    }
                    if results.isComplete { break receiving }
                }
            }
        } onCancel: {
            supervisor.finish(callID: callID, stopRunningWork: true)
        }
        supervisor.finish(callID: callID)
        if var failure {
            let partial = merge?(results.partial()) ?? results.partial()
            if let original = tap?.original { failure = remapped(failure, original) }
            var unwritten: Int?
            if failure.code == .interrupted, let path = options.interruptResultsPath {
                unwritten = Self.writeResultsFile(partial, call: callID, to: path)
            }
            throw MultiprocessingError(copying: failure, partialResults: partial, unwrittenResults: unwritten)
        }
        guard results.isComplete else {
            throw MultiprocessingError(
                copying: MultiprocessingError(
                    .cancelled, "the call was cancelled (its task, or its PendingCall); the work it started was stopped"
                ),
                partialResults: merge?(results.partial()) ?? results.partial())
        }
        return results.inOrder()
    }

    /// Applies a function of several arguments to every tuple of arguments, in parallel,
    /// and returns the outputs in input order (Python's `Pool.starmap`).
    ///
    /// The function's input type is ``Arguments``; a struct input with `map` does the same
    /// with named fields.
    ///
    /// - Throws: the errors of ``map(_:_:chunkSize:progress:)``.
    public func starmap<F: WorkerFunction, each Value: Codable & Sendable>(
        _ function: F, _ inputs: [(repeat each Value)], chunkSize: Int? = nil, progress: ProgressMode? = nil
    ) async throws -> [F.Output] where F.Input == Arguments<repeat each Value> {
        try await map(function, inputs.map { Arguments(repeat each $0) }, chunkSize: chunkSize, progress: progress)
    }

    /// Runs `function` on one input in a worker and returns its output (Python's `Pool.apply`).
    ///
    /// - Throws: the errors of ``map(_:_:chunkSize:progress:)``, for this one item (index 0).
    public func apply<F: WorkerFunction>(_ function: F, _ input: F.Input) async throws -> F.Output {
        try await apply(function, input, admitted: false)
    }

    /// ``apply(_:_:)``; `admitted`: see ``map(_:_:chunkSize:progress:admitted:)``.
    func apply<F: WorkerFunction>(_ function: F, _ input: F.Input, admitted: Bool) async throws -> F.Output {
        if let journal {
            // With a journal, an apply is served by any recorded item with the same input.
            try checkOpen(admitted: admitted)
            return try await journaledMap(
                journal, function, [input], typeName: try F.checkFindableByName(), chunkSize: 1, progress: nil,
                name: "apply")[0]
        }
        return try await map(
            function, CollectionOfOne(input), chunkSize: 1, progress: nil, admitted: admitted, shared: false)[0]
    }

    /// Appends an interrupted call's results to the results file and says so on stderr;
    /// returns how many received results are not in the file.
    static func writeResultsFile<Output: Encodable>(_ partial: [Output?], call: UInt64, to path: String) -> Int {
        let received = partial.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        guard received > 0 else { return 0 }
        do {
            let outcome = try ResultsFile.append(partial, call: call, to: path)
            if let (index, reason) = outcome.firstUnwritable {
                Platform.writeToStandardError(
                    "swift-multiprocessing: wrote \(outcome.written) of the \(received) results received so far to \(path); \(outcome.unwritable) could not be written: JSON cannot hold them (the first, item \(index): \(reason)); all are in the error's partialResults\n"
                )
            } else {
                Platform.writeToStandardError(
                    "swift-multiprocessing: wrote the \(outcome.written) results received so far to \(path)\n")
            }
            return outcome.unwritable
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: could not write the \(received) results received so far to \(path): \(describe(error)); they are in the error's partialResults\n"
            )
            return received
        }
    }

    /// Throws `poolClosed` when the pool is closed, or joining (unless `admitted`).
    func checkOpen(admitted: Bool = false) throws {
        if closed.load(ordering: .acquiring) { throw Supervisor.closedError() }
        if !admitted && outstanding.isJoining { throw Self.joiningError() }
    }

    static func joiningError() -> MultiprocessingError {
        MultiprocessingError(
            .poolClosed,
            "the pool is closing: closeAndJoin() was called, so it finishes the work submitted before and takes no more. Submit all work before calling closeAndJoin(), or create a new pool"
        )
    }

    /// Decodes a result frame into `results` (the same decoding as the streams'); throws
    /// the first failed item's error, after keeping the successes of the same chunk.
    static func decodeResults<Output: Decodable & Sendable>(
        _ type: Output.Type, _ header: Message.Result, _ range: Range<Int>, _ payload: [UInt8], _ offset: Int,
        _ worker: MultiprocessingError.WorkerIdentity, into results: inout OrderedResults<Output>
    ) throws {
        try add(ResultsCore<Output>.decode(header, range, payload, offset, worker), into: &results)
    }

    /// Adds a chunk's outcome (decoded, or computed on a thread) to `results`; throws the
    /// first failed item's error, after keeping the successes of the same chunk.
    static func add<Output: Decodable & Sendable>(
        _ chunk: ResultsCore<Output>.Chunk, into results: inout OrderedResults<Output>
    ) throws {
        switch chunk {
        case .values(let start, let outputs):
            results.add(chunkStartingAt: start, outputs)
        case .mixed(let start, let outcomes):
            var firstFailure: MultiprocessingError?
            for (position, outcome) in outcomes.enumerated() {
                switch outcome {
                case .success(let output): results.add(output, at: start + position)
                case .failure(let error): firstFailure = firstFailure ?? error
                }
            }
            if let firstFailure { throw firstFailure }
        case .failed(_, let error):
            throw error
        }
    }
}

/// Runs `body` with a new pool and closes the pool when `body` returns or throws.
///
/// - Parameters:
///   - workers: the number of worker processes; `nil` applies the CPU rules of ``WorkerCount``.
///   - options: limits and timeouts.
///   - isolation: the caller's actor; `body` runs on it.
///   - body: the work; the pool must not escape it.
/// - Returns: what `body` returns.
/// - Throws: the errors of ``ProcessPool/init(workers:options:)`` and whatever `body` throws.
///   When a worker dies, the items it ran fail inside `body` (see ``ProcessPool/map(_:_:chunkSize:progress:)``);
///   the pool itself goes on.
public func withProcessPool<BodyResult>(
    workers: Int? = nil,
    options: ProcessPool.Options = ProcessPool.Options(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ProcessPool) async throws -> BodyResult
) async throws -> BodyResult {
    let pool = try await ProcessPool(workers: workers, options: options)
    do {
        let result = try await body(pool)
        await pool.close()
        return result
    } catch {
        await pool.close()
        throw error
    }
}
