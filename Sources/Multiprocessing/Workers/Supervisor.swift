import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

#if os(Linux)
/// What the supervisor tells the task that waits on a call.
enum CallEvent: Sendable {
    /// A chunk's results arrived (decode them from `payload` starting at `offset`).
    case results(
        Message.Result, range: Range<Int>, payload: [UInt8], offset: Int, worker: MultiprocessingError.WorkerIdentity)
    /// These items failed together: their worker died or timed out (after any retries),
    /// or their inputs could not be encoded.
    case chunkFailed(range: Range<Int>, MultiprocessingError)
    /// The input ran dry: the call has `total` items in all.
    case ended(total: Int)
    /// The whole call failed (its function could not be installed, the pool closed or
    /// was interrupted).
    case failed(MultiprocessingError)
    /// A chunk ran on a thread of this process (``ThreadEngine``): its outcome, not encoded.
    case computed(ComputedChunk)
}

/// What a call's input produced for one chunk.
enum ProducedChunk {
    /// `count` items, encoded as a task frame.
    case frame(count: Int, TaskFrame)
    /// `count` items that could not be encoded.
    case failed(count: Int, MultiprocessingError)
    /// `count` items for the threads engine (``ThreadEngine``), not encoded.
    case inProcess(count: Int, InProcessChunk)
}

/// One call (a `map`, a stream, an `apply`) as the supervisor sees it: type-erased, touched
/// only by the event loop's owner.
final class CallRecord: @unchecked Sendable {
    let id: UInt64
    /// The install frame: the function's type name and encoded value.
    let installFrame: [UInt8]
    var schedule: CallSchedule<TaskFrame>
    /// Takes up to `maxCount` items from the input, starting at item `firstIndex`, and
    /// encodes them as the task frame of chunk `chunkID`; `nil` when the input is dry.
    /// Called only by the loop's owner, in order: on the loop thread for a stream (see
    /// ``readsProgramInput``), possibly inline on the caller's thread for `map`.
    let produce: (_ chunkID: UInt64, _ firstIndex: Int, _ maxCount: Int) -> ProducedChunk?
    /// Hands events to the task that waits on the call, several at a time (see
    /// ``Supervisor/post(_:_:)``).
    let deliver: @Sendable ([CallEvent]) -> Void
    /// Events posted in this round of the event loop, not yet delivered.
    var outbox: [CallEvent] = []
    /// Called once when the supervisor forgets the call (it ends the caller's event stream).
    let onForget: @Sendable () -> Void
    /// For a stream: where its consumer counts the chunks it has taken (``nextChunkSize()``).
    let credit: StreamCredit?
    /// Failed attempts of items being retried, by the first input index of what failed.
    var attempts: [Int: [MultiprocessingError]] = [:]
    /// For progress output: the call's kind (`map`, `imap`, ...), and its counts.
    var name = "call"
    var done = 0
    var failed = 0
    var retried = 0
    /// Whether the call's chunks come from the program's own sequence (a stream), which
    /// only the loop thread reads (see ``Supervisor``'s `nextChunk`); `map`'s inputs are
    /// already in memory.
    var readsProgramInput = false
    let startNanos = Platform.monotonicNanos()
    var lastLineNanos: UInt64 = 0
    /// This call's own progress mode (already resolved), overriding the pool's.
    var progress: ProgressMode?

    /// The progress figures of this call now.
    var snapshot: ProgressSnapshot {
        ProgressSnapshot(
            name: name, done: done, total: schedule.totalItems, failed: failed, retried: retried,
            elapsedNanos: Platform.monotonicNanos() &- startNanos)
    }

    init(
        id: UInt64, installFrame: [UInt8], schedule: CallSchedule<TaskFrame>,
        produce: @escaping (UInt64, Int, Int) -> ProducedChunk?,
        deliver: @escaping @Sendable ([CallEvent]) -> Void,
        onForget: @escaping @Sendable () -> Void, credit: StreamCredit? = nil
    ) {
        self.credit = credit
        self.id = id
        self.installFrame = installFrame
        self.schedule = schedule
        self.produce = produce
        self.deliver = deliver
        self.onForget = onForget
    }
}

/// How the supervisor runs its workers (from ``ProcessPool/Options``).
struct SupervisorSettings: Sendable {
    var workerCount: Int
    var maximumPayload: Int
    var handshakeTimeoutNanos: UInt64
    /// Extra attempts for an item whose worker died or timed out.
    var retries: Int = 0
    var itemTimeoutNanos: UInt64?
    /// The initialize frame sent to every new worker, when the pool has an initializer.
    var initializerFrame: [UInt8]?
    /// A worker is replaced once it has run this many items.
    var maximumItemsPerWorker: Int?
    /// Progress output on stderr (already resolved: off, bar or lines).
    var progress: ProgressMode = .off
    /// How often a `lines` progress line is printed (default 10 s).
    var progressLineIntervalNanos: UInt64 = 10_000_000_000
    /// Where worker lifecycle events go.
    var logger = Logger(label: "swift-multiprocessing")
    /// The program's own progress display.
    var onProgress: (@Sendable (CallProgress) -> Void)?
    /// Where the workers run: here, or on every node of a Slurm allocation.
    var placement = Placement.local
    /// How long a worker may hold the same work before progress lines and the report name
    /// it (see ``Supervisor/stalledWorkers(now:)``).
    var stallReportNanos: UInt64 = 30_000_000_000
    /// Where the pool's timeline is written when it closes (``ProcessPool/Options/timelinePath``).
    var timelinePath: String?
}

/// Owns the worker processes and the calls of one pool; see `README.md` in this folder.
///
/// Everything here runs as the event loop's owner: on the loop's thread, or inline on a
/// caller's thread while the loop thread waits (``EventLoop/executeInline(_:)``), never
/// both at once. The public pool talks to it only through ``start()``, ``submit(_:)``,
/// ``finish(callID:stopRunningWork:)``, ``consumed(callID:chunks:)``, ``interrupt(_:)``
/// and ``close()``; a call's submit and finish run inline when they can.
final class Supervisor: @unchecked Sendable {
    enum State { case starting, running, closing, closed }

    /// How many chunks one worker may hold at once: the one it runs and one waiting, so
    /// it never idles while its next chunk crosses the socket. More would hurt balance.
    static let chunksPerWorker = 2
    /// When chunks take less than ``shortChunkNanos`` of work (a fixed tiny chunk size),
    /// a worker may hold more than two, so that it reads a batch of tasks at once and
    /// answers them with one write: up to this many, about ``shortChunksQueuedNanos`` of
    /// work at the last chunk's pace, and while its chunks in flight hold less than
    /// ``shortChunksQueuedBytes`` of task frames.
    static let chunksPerWorkerForShortChunks = 128
    static let shortChunkNanos: UInt64 = 50_000
    static let shortChunksQueuedNanos: UInt64 = 1_000_000
    static let shortChunksQueuedBytes = 1 << 20
    /// A slot whose worker fails to start this many times in a row is given up.
    static let maximumConsecutiveStartFailures = 3
    /// Handshakes (each on a thread of its own, for at most 10 s) running at once.
    static let maximumHandshakes = 256
    /// How long a closing pool waits for workers to exit before it kills them.
    static let exitGraceNanos: UInt64 = 2_000_000_000

    let loop: EventLoop
    let launcher: LocalLauncher
    let settings: SupervisorSettings
    /// Worker slots in use (on lost nodes excluded).
    var workerCount: Int { slots.count - retiredSlots.count }
    var maximumPayload: Int { settings.maximumPayload }
    private let buildID = Platform.executableBuildID()

    private var state = State.starting
    private var slots: [WorkerConnection?]
    /// For each slot, the worker host (on another node) that runs its worker; nil: local.
    private var slotHosts: [RemoteHost?]
    /// Slots whose node was lost: never filled again.
    private var retiredSlots: Set<Int> = []
    /// A multi-node pool's listener, secret, step and hosts.
    private var cluster: ClusterState?
    /// Handshakes running on threads of their own (bounded, against connection floods).
    private let handshakes = Atomic<Int>(0)
    /// Workers that left their slot (recycled) and have not been reaped yet.
    private var departed: [WorkerConnection] = []
    private var startFailures: [Int]
    private var calls: [UInt64: CallRecord] = [:]
    /// Calls that still have items to hand out, oldest first.
    private var callOrder: [UInt64] = []
    private var nextChunkID: UInt64 = 1
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)
    private var startWaiter: CheckedContinuation<(workers: Int, description: String), any Error>?
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var killTimer: UInt64?
    private var lastStartError: MultiprocessingError?
    /// Why the pool stopped, when a signal stopped it (later calls fail with it too).
    private var interruption: MultiprocessingError?
    /// Why the pool can take no more work although it is open (no worker is left and none
    /// can be started: every node was lost, or every slot failed to start); later calls
    /// fail with it.
    private var unusable: MultiprocessingError?
    /// Figures for the report: per slot, and for the whole pool.
    private var statistics: PoolStatistics
    /// Every chunk on every worker, when the pool writes a timeline.
    let timeline: TimelineRecorder?

    /// The stack of the "mp-supervisor" thread, which encodes chunks for the calls it feeds:
    /// 8 MiB, the usual default, set explicitly because under `ulimit -s unlimited` Linux
    /// gives new threads only 2 MiB, and values nested `BinaryCodec.maximumDepth` levels
    /// deep need about 2.5 MiB (5 MiB in a debug build). Only the pages touched are ever allocated.
    static let threadStackBytes = 8 << 20

    init(settings: SupervisorSettings) throws {
        try LocalLauncher.reserveDescriptors(workers: settings.placement == .local ? settings.workerCount : 0)
        loop = try EventLoop()
        launcher = LocalLauncher(maximumPayload: settings.maximumPayload, timesItems: settings.itemTimeoutNanos != nil)
        self.settings = settings
        let local = settings.placement == .local ? settings.workerCount : 0
        slots = Array(repeating: nil, count: local)
        slotHosts = Array(repeating: nil, count: local)
        startFailures = Array(repeating: 0, count: local)
        let statistics = PoolStatistics(workers: local)
        self.statistics = statistics
        timeline = settings.timelinePath.map { TimelineRecorder(path: $0, originNanos: statistics.startNanos) }
        loop.afterIteration = { [weak self] in self?.flushDeliveries() }
        try loop.start(name: "mp-supervisor", stackBytes: Self.threadStackBytes)
    }

    // MARK: - Entry points (any thread)

    /// Spawns every worker and returns, with the number of workers, when all have
    /// completed the handshake. A multi-node pool first starts its worker hosts.
    func start() async throws -> (workers: Int, description: String) {
        try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<(workers: Int, description: String), any Error>) in
            loop.execute { [self] in
                startWaiter = continuation
                if case .nodes(let count, let cpusPerTask) = settings.placement {
                    do {
                        try startCluster(nodes: count, cpusPerTask: cpusPerTask)
                    } catch {
                        failStart(error)
                        return
                    }
                }
                for slot in 0..<slots.count {
                    do {
                        try spawn(slot: slot)
                    } catch {
                        failStart(error)
                        return
                    }
                }
                if let timeout = settings.itemTimeoutNanos { scheduleTimeoutCheck(timeout) }
                if settings.progress != .off || settings.onProgress != nil { startProgressTimer() }
            }
        }
    }

    /// Registers a call and hands out its first chunks: inline on the caller's thread when
    /// the loop is idle (a stream's chunks are still read on the loop thread, see
    /// ``nextChunk(atMost:)``).
    func submit(_ call: CallRecord) {
        loop.executeInline { [self] in
            guard state == .running, unusable == nil else {
                post(call, .failed(unusable ?? interruption.map(Self.stoppedEarlier) ?? Self.closedError()))
                forget(call)
                return
            }
            calls[call.id] = call
            callOrder.append(call.id)
            timeline?.callStarted(id: call.id, name: call.name)
            if progressMode(call) == .lines { printProgressLine(call, event: "started") }
            if progressMode(call) != .off { startProgressTimer() }
            pump()
        }
    }

    /// The pool's figures since it started (for ``ProcessPool/report()``).
    func report() async -> PoolReport {
        await withCheckedContinuation { (continuation: CheckedContinuation<PoolReport, Never>) in
            loop.execute { [self] in
                for case let worker? in slots { statistics.hosts[worker.slot] = worker.host }
                var report = currentReport()
                report.stalled = stalledWorkers(now: Platform.monotonicNanos())
                continuation.resume(returning: report)
            }
        }
    }

    /// The statistics' report, with the CPU time so far of the local workers still
    /// running (ended ones were counted before they were reaped).
    private func currentReport() -> PoolReport {
        let live = allWorkers.compactMap { worker -> (slot: Int, cpu: Platform.CPUSeconds)? in
            guard worker.remoteHost == nil, !worker.ended, let cpu = Platform.processCPUTime(pid: worker.pid) else {
                return nil
            }
            return (worker.slot, cpu)
        }
        return statistics.report(liveCPU: live)
    }

    /// Forgets a call (finished, or failed): no more of its chunks are handed out, results
    /// still on their way are dropped, workers release its function.
    ///
    /// With `stopRunningWork` (the caller was cancelled, or stopped consuming a stream),
    /// workers still running chunks of the call are stopped (SIGKILL) and replaced, so no
    /// orphaned work goes on; chunks of other calls they held are handed out again.
    func finish(callID: UInt64, stopRunningWork: Bool = false) {
        loop.executeInline { [self] in
            guard let call = calls.removeValue(forKey: callID) else { return }
            forget(call)
            callOrder.removeAll { $0 == callID }
            if let onProgress = settings.onProgress {
                let progress = CallProgress(call.snapshot, finished: true)
                loop.onLoopThread { onProgress(progress) }
            }
            switch progressMode(call) {
            case .lines: printProgressLine(call, event: stopRunningWork ? "stopped" : "finished")
            case .bar:
                let bar = "\r" + call.snapshot.bar() + "\u{1B}[K\n"
                loop.onLoopThread { Platform.writeToStandardError(bar) }
            default: break
            }
            for case let worker? in slots where worker.installed.contains(callID) {
                worker.installed.remove(callID)
                if stopRunningWork, worker.hasChannel, runningCallID(of: worker) == callID {
                    worker.stopReason = .cancelled
                    worker.kill()
                    continue
                }
                // Written with the worker's next frames (a release needs no write of its
                // own), or within ``releaseDelayNanos`` if none come.
                if let frame = try? Message.releaseFrame(callID: callID) {
                    worker.queue(frame)
                    scheduleQueuedFramesFlush()
                }
            }
        }
    }

    /// How long a release frame may wait for other frames to the same worker.
    static let releaseDelayNanos: UInt64 = 20_000_000
    private var queuedFramesFlushScheduled = false

    /// Writes, soon, frames left queued (releases) to workers that got nothing since.
    private func scheduleQueuedFramesFlush() {
        guard !queuedFramesFlushScheduled else { return }
        queuedFramesFlushScheduled = true
        loop.schedule(afterNanoseconds: Self.releaseDelayNanos) { [weak self] in
            guard let self else { return }
            queuedFramesFlushScheduled = false
            flushQueuedFrames()
        }
    }

    /// Writes every worker's queued frames.
    private func flushQueuedFrames() {
        for case let worker? in slots where worker.hasQueuedFrames {
            do {
                try worker.flush()
            } catch {
                // The socket broke: the worker's exit settles its chunks (they are in flight).
                // Settling may respawn, log and hand out more work: on the loop thread.
                let error = MultiprocessingError.from(error)
                loop.onLoopThread { [self] in brokenChannel(worker, error) }
            }
        }
    }

    /// The call of the chunk a worker is running: the in-flight chunk its progress page
    /// names (it may have run earlier ones and still hold their results), else the first.
    private func runningCallID(of worker: WorkerConnection) -> UInt64? {
        if let snapshot = worker.progressPage?.snapshot(), snapshot.phase != .idle,
            let running = worker.inFlight.first(where: { $0.chunk.id == snapshot.chunkID })
        {
            return running.callID
        }
        return worker.inFlight.first?.callID
    }

    /// The consumer of a stream took the results of `chunks` chunks: more may be sent (read
    /// from the stream's sequence, so on the loop thread).
    func consumed(callID: UInt64, chunks: Int) {
        loop.execute { [self] in
            guard let call = calls[callID] else { return }
            call.schedule.consumed(chunks: chunks)
            if !callOrder.contains(callID) && !call.schedule.isExhausted { callOrder.append(callID) }
            pump()
        }
    }

    /// Writes the timeline as it stands, for a program about to exit without closing the
    /// pool (a requeue before the time limit). Blocks the calling thread, which must be one
    /// of the library's own, until it is written or 5 s have passed.
    func writeTimelineBeforeExit() {
        guard timeline != nil else { return }
        let done = ConditionLock()
        let written = Atomic<Bool>(false)
        loop.execute { [self] in
            writeTimeline(final: false)
            done.lock()
            written.store(true, ordering: .releasing)
            done.signal()
            done.unlock()
        }
        let deadline = Platform.monotonicNanos() + 5_000_000_000
        done.lock()
        while !written.load(ordering: .acquiring) {
            let now = Platform.monotonicNanos()
            guard now < deadline else { break }
            done.wait(nanoseconds: deadline - now)
        }
        done.unlock()
    }

    /// Stops the pool because the program received a signal: calls fail with `error`
    /// (code ``MultiprocessingError/Code/interrupted``), no new work is sent, and the
    /// workers are stopped.
    func interrupt(_ error: MultiprocessingError) {
        loop.execute { [self] in
            guard state == .starting || state == .running else { return }
            interruption = error
            failAllCalls(error)
            writeTimeline(final: false)  // now: the program may exit before the pool has closed
            if state == .starting {
                startWaiter?.resume(throwing: error)
                startWaiter = nil
            }
            beginClosing()
        }
    }

    /// Stops every worker (politely, then with SIGKILL after a grace period), fails
    /// calls still pending with ``MultiprocessingError/Code/poolClosed``, and returns
    /// once every worker process has been reaped.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in
                if state == .closed {
                    continuation.resume()
                    return
                }
                closeWaiters.append(continuation)
                beginClosing()
            }
        }
    }

    /// Starts closing without waiting (used when a pool is dropped unclosed). The
    /// supervisor keeps itself alive until its workers are reaped: its handlers hold it
    /// weakly, so without this the pool's last reference would go with this call and the
    /// exiting workers would stay zombies (and the loop thread would run on) until the
    /// program ends.
    func closeDetached() {
        loop.execute { [self] in
            keptAliveUntilClosed = self
            beginClosing()
        }
    }

    /// Set by ``closeDetached()``, cleared when the pool is closed.
    private var keptAliveUntilClosed: Supervisor?

    /// Reaps the process behind a readable pidfd: how it ended, or nil when it has not
    /// (a spurious wakeup). A failed wait counts as `exited(-1)`.
    static func reapIfExited(_ handle: Int32) -> ProcessTermination? {
        do {
            return try Platform.reap(handle, wait: false)
        } catch {
            return .exited(-1)
        }
    }

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

    /// Every worker process not reaped yet: those in slots, and recycled ones still finishing.
    private var allWorkers: [WorkerConnection] { slots.compactMap { $0 } + departed }

    // MARK: - Delivering events

    /// Calls with events posted in this round of the event loop.
    private var pendingDeliveries: [CallRecord] = []

    /// Posts an event for the task that waits on `call`. Events are handed over once per
    /// round of the event loop (``flushDeliveries()``): the results of the many small chunks
    /// read in one round wake the waiting task once, not once each.
    private func post(_ call: CallRecord, _ event: CallEvent) {
        if call.outbox.isEmpty { pendingDeliveries.append(call) }
        call.outbox.append(event)
    }

    private func flush(_ call: CallRecord) {
        guard !call.outbox.isEmpty else { return }
        let events = call.outbox
        call.outbox.removeAll()
        call.deliver(events)
    }

    /// Delivers every event posted in this round (the loop calls it after each round).
    private func flushDeliveries() {
        for call in pendingDeliveries { flush(call) }
        pendingDeliveries.removeAll(keepingCapacity: true)
    }

    /// Delivers what is left for `call`, then ends its event stream.
    private func forget(_ call: CallRecord) {
        flush(call)
        call.onForget()
    }

    // MARK: - Workers

    private func spawn(slot: Int) throws {
        if let host = slotHosts[slot] {
            requestRemoteWorker(slot: slot, on: host)
            return
        }
        let spawned = try launcher.spawn(slot: slot)
        let worker = WorkerConnection(slot: slot, spawned: spawned, maximumPayload: maximumPayload)
        slots[slot] = worker
        timeline?.workerStarted(worker)
        settings.logger.debug("worker started", metadata: Self.metadata(worker))
        do {
            try registerChannel(worker)
            worker.processToken = try loop.register(
                worker.processHandle, .readable,
                EventHandler { [weak self, unowned worker] _, _, _ in self?.processExited(worker) })
            try worker.output?.watch(loop: loop)
        } catch {
            Platform.kill(worker.pid, 9)
            throw error
        }
        startHandshakeTimer(worker)
    }

    /// How the workers were counted: for a multi-node pool, per node.
    private func startedDescription() -> String {
        guard let cluster else { return "\(slots.count) local workers" }
        let nodes = cluster.hosts.map { "\($0.hello.node): \($0.hello.workers) (\($0.hello.reason))" }
        return "\(cluster.hosts.count) nodes, each counting its own CPUs — " + nodes.joined(separator: "; ")
    }

    /// Watches a worker's channel (local socket pair or remote TCP alike).
    private func registerChannel(_ worker: WorkerConnection) throws {
        worker.connection.token = try loop.register(
            worker.channel, [.readable, .writable, .edgeTriggered],
            EventHandler { [weak self, unowned worker] readable, writable, hangup in
                self?.channelEvent(worker, readable: readable, writable: writable, hangup: hangup)
            })
    }

    /// Kills a worker that does not complete the handshake (and initializer) in time.
    private func startHandshakeTimer(_ worker: WorkerConnection) {
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

    private func channelEvent(_ worker: WorkerConnection, readable: Bool, writable: Bool, hangup: Bool) {
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
    private func brokenChannel(_ worker: WorkerConnection, _ error: MultiprocessingError?) {
        if let error, worker.connectionError == nil {
            worker.connectionError = error
            worker.kill()
        }
        worker.phase = .exiting
        closeChannel(of: worker)
    }

    /// Closes a worker's channel. A remote worker whose host has already reported its exit
    /// is settled now: its channel was the last thing outstanding.
    private func closeChannel(of worker: WorkerConnection) {
        worker.closeChannel(loop: loop)
        if worker.remoteHost != nil, let report = worker.exitReport { workerEnded(worker, report.termination) }
    }

    /// When the loop last woke to read a channel: the time results read then arrived.
    private var wakeupNanos: UInt64 = 0

    private func processFrames(_ worker: WorkerConnection) throws {
        while worker.hasChannel, let frame = try worker.assembler.next() {
            try handle(frame, from: worker)
        }
    }

    private func handle(_ frame: Frame, from worker: WorkerConnection) throws {
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
            if worker.remoteHost != nil { worker.pid = hello.pid }
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

    private func workerIsReady(_ worker: WorkerConnection) {
        settings.logger.debug("worker ready", metadata: Self.metadata(worker))
        worker.phase = .ready
        worker.becameReady = true
        if let timer = worker.handshakeTimer { loop.cancelTimer(timer) }
        startFailures[worker.slot] = 0
        if state == .starting, slots.allSatisfy({ $0?.phase == .ready }),
            cluster.map({ $0.hosts.count == $0.expectedHosts && $0.pending.isEmpty }) ?? true
        {
            state = .running
            startWaiter?.resume(returning: (slots.count, startedDescription()))
            startWaiter = nil
        }
        pump()
    }

    /// A worker that has run its share of items (``SupervisorSettings/maximumItemsPerWorker``)
    /// leaves its slot to a fresh worker, and exits once its last chunk is answered.
    private func recycleIfDue(_ worker: WorkerConnection) {
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

    private func processExited(_ worker: WorkerConnection) {
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
    private func workerEnded(_ worker: WorkerConnection, _ termination: ProcessTermination) {
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

    // MARK: - Lost work

    /// Settles the chunks of a worker that died. In the chunk it was on, only the item it
    /// was decoding, running or encoding fails (or is retried); the items before and after
    /// it, and every chunk waiting behind it, go back to their calls for other workers.
    private func settleLostWork(_ worker: WorkerConnection, _ termination: ProcessTermination) {
        let snapshot = worker.progressSnapshot()
        for (position, inFlight) in worker.inFlight.enumerated() {
            guard let call = calls[inFlight.callID] else { continue }
            let chunk = inFlight.chunk
            let task = chunk.payload.task
            if termination.lostNode != nil, position == 0, worker.stopReason != .cancelled {
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
    private func settle(
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

    private func enqueue(_ call: CallRecord) {
        if !callOrder.contains(call.id) { callOrder.append(call.id) }
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

    private func failureError(
        _ worker: WorkerConnection, _ termination: ProcessTermination, index: Int?, phase: ProgressPage.Phase,
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

    static func formatSeconds(_ nanos: UInt64) -> String {
        let seconds = Double(nanos) / 1e9
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }

    private func respawn(after worker: WorkerConnection, _ termination: ProcessTermination) {
        if !worker.becameReady || worker.fatalMessage != nil {
            startFailures[worker.slot] += 1
            lastStartError = startError(worker, termination)
        }
        respawn(slot: worker.slot, replacing: worker.identity.description)
    }

    /// Fills `slot` again, unless its workers keep failing to start.
    private func respawn(slot: Int, replacing what: String) {
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

    private func failAllCalls(_ error: MultiprocessingError) {
        for call in calls.values {
            post(call, .failed(error))
            forget(call)
        }
        calls.removeAll()
        callOrder.removeAll()
    }

    private func startError(_ worker: WorkerConnection, _ termination: ProcessTermination) -> MultiprocessingError {
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

    private func failStart(_ error: any Error) {
        guard state == .starting else { return }
        startWaiter?.resume(throwing: error)
        startWaiter = nil
        beginClosing()
    }

    // MARK: - Timeouts

    /// Checks, a few times per timeout period, whether a worker has held its work past the
    /// limit: the clock of the chunk it is on (``WorkerConnection/heldWork(now:)``, moved
    /// forward by each item's start in its progress page). Such a worker is killed; its
    /// death fails the item it was on as timed out, and sends the rest of its work elsewhere.
    /// A worker frozen while idle (stopped, or stuck in the kernel) is caught the same way:
    /// the chunk sent to it starts its clock.
    private func scheduleTimeoutCheck(_ limit: UInt64) {
        let interval = min(max(limit / 8, 2_000_000), 100_000_000)
        loop.schedule(afterNanoseconds: interval) { [weak self] in
            guard let self, state == .starting || state == .running else { return }
            let now = Platform.monotonicNanos()
            for case let worker? in slots
            where worker.phase == .ready && worker.stopReason == nil && worker.remoteHost == nil {
                // A remote worker's host checks each item's time itself.
                if let held = worker.heldWork(now: now), held.nanos > limit {
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
            guard let held = worker.heldWork(now: now), held.nanos >= settings.stallReportNanos else { continue }
            let typical = calls[held.callID]?.schedule.lastChunkNanos
            if let typical, held.nanos / 20 < typical { continue }
            let pace = typical.map { "; its call's chunks have been taking \(Self.formatDuration($0))" } ?? ""
            lines.append(
                "\(worker.identity) has held items \(held.items.lowerBound)..<\(held.items.upperBound) for \(Self.formatDuration(held.nanos))\(pace); it may be stuck (ProcessPool.Options.itemTimeout stops such items)"
            )
        }
        return lines
    }

    // MARK: - Progress

    /// The progress mode of a call: its own, or the pool's.
    private func progressMode(_ call: CallRecord) -> ProgressMode { call.progress ?? settings.progress }

    private var progressTimerRunning = false

    private func startProgressTimer() {
        guard !progressTimerRunning else { return }
        progressTimerRunning = true
        scheduleProgress()
    }

    /// Redraws the bar five times a second, or prints a line every
    /// ``SupervisorSettings/progressLineIntervalNanos``, for the calls in progress.
    private func scheduleProgress() {
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
                && now &- max(call.lastLineNanos, call.startNanos) >= settings.progressLineIntervalNanos
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

    private func printProgressLine(_ call: CallRecord, event: String) {
        call.lastLineNanos = Platform.monotonicNanos()
        let line =
            "\(ProgressSnapshot.timestamp()) swift-multiprocessing: \(call.snapshot.line(event: event, workers: workerCount))\n"
        loop.onLoopThread { Platform.writeToStandardError(line) }
    }

    // MARK: - Scheduling

    /// Hands out chunks to workers with room, filling every worker to one chunk before any
    /// gets a second.
    private func pump() {
        guard state == .running else { return }
        var maximumDepth = Self.chunksPerWorker
        if let first = callOrder.first.flatMap({ calls[$0] }), let nanos = first.schedule.lastChunkNanos,
            nanos < Self.shortChunkNanos
        {
            let fitting = Int(Self.shortChunksQueuedNanos / max(nanos, 1))
            maximumDepth = max(Self.chunksPerWorker, min(Self.chunksPerWorkerForShortChunks, fitting))
        }
        // Frames are queued while chunks are handed out and written once per worker at the
        // end, so a worker receives its batch of small tasks in one write.
        defer {
            flushQueuedFrames()
            if streamsWaitForLoopThread {
                streamsWaitForLoopThread = false
                loop.onLoopThread { [self] in pump() }
            }
        }
        for depth in 1...maximumDepth {
            for case let worker? in slots
            where worker.phase == .ready && worker.inFlight.count < depth
                && (depth <= Self.chunksPerWorker || worker.inFlightBytes < Self.shortChunksQueuedBytes)
            {
                let budget = settings.maximumItemsPerWorker.map { $0 - worker.itemsQueued } ?? Int.max
                guard budget > 0 else { continue }  // it has all the items it may run; it is recycled next
                guard let (call, chunk) = nextChunk(atMost: budget) else { return }
                dispatch(call, chunk, to: worker)
            }
        }
    }

    /// Set when inline work passed over a stream: ``pump()`` then pumps again on the loop thread.
    private var streamsWaitForLoopThread = false

    /// The next chunk to send: a given-back one, else new items from the oldest call that
    /// has some and room in its window. Inline work on a caller's thread passes over
    /// streams: their chunks come from the program's own sequence, read on the loop thread.
    private func nextChunk(atMost budget: Int) -> (CallRecord, CallSchedule<TaskFrame>.Chunk)? {
        var index = 0
        while index < callOrder.count {
            guard let call = calls[callOrder[index]] else {
                callOrder.remove(at: index)
                continue
            }
            if call.readsProgramInput && loop.runsInlineWork {
                streamsWaitForLoopThread = true
                index += 1
                continue
            }
            if let chunk = call.schedule.takeRequeued() { return (call, chunk) }
            if let size = call.nextChunkSize() {
                let chunkID = nextChunkID
                nextChunkID += 1
                let first = call.schedule.nextIndex
                switch call.produce(chunkID, first, min(size, budget)) {
                case .frame(let count, let frame)?:
                    call.schedule.handedOut(count: count)
                    return (call, .init(id: chunkID, range: first..<(first + count), payload: frame))
                case .failed(let count, let error)?:
                    call.schedule.handedOut(count: count)
                    call.schedule.abandoned(first..<(first + count))
                    post(call, .chunkFailed(range: first..<(first + count), error))
                    continue
                case .inProcess?:
                    preconditionFailure("a chunk made for the threads engine reached the process engine")
                case nil:
                    call.schedule.endOfSource()
                    post(call, .ended(total: call.schedule.nextIndex))
                }
            }
            if call.schedule.isExhausted {
                callOrder.remove(at: index)
            } else {
                index += 1  // its window is full: the consumer will make room
            }
        }
        return nil
    }

    /// Queues a chunk (and the call's function, the first time) for a worker; ``pump()``
    /// writes the queued frames.
    private func dispatch(_ call: CallRecord, _ chunk: CallSchedule<TaskFrame>.Chunk, to worker: WorkerConnection) {
        let range = chunk.range
        guard chunk.payload.bytes.count - Frame.headerSize <= maximumPayload else {
            let error = MultiprocessingError(
                .frameTooLarge,
                "the inputs of items \(range.lowerBound)..<\(range.upperBound) encode to \(chunk.payload.bytes.count) bytes, above the frame limit of \(maximumPayload) bytes: pass a smaller chunkSize, send smaller items, or raise ProcessPool.Options.maximumFrameBytes"
            )
            call.schedule.abandoned(range)
            post(call, .chunkFailed(range: range, error))
            return
        }
        if !worker.installed.contains(call.id) {
            worker.queue(call.installFrame)
            worker.installed.insert(call.id)
        }
        worker.sent(.init(callID: call.id, chunk: chunk))
        timeline?.queued(to: worker)
        worker.itemsQueued += range.count
        worker.queue(chunk.payload.bytes)
    }

    // MARK: - Nodes (a multi-node pool)

    /// Listens on an ephemeral port and starts the `srun` step of worker hosts; the pool
    /// is running once every host has joined and every worker it started is ready.
    private func startCluster(nodes: Int, cpusPerTask: Int?) throws {
        // One descriptor per remote worker: a pool of many nodes needs more than the usual
        // soft limit of 1024.
        Platform.raiseOpenFilesLimit()
        let cluster = try ClusterState(expectedHosts: nodes)
        self.cluster = cluster
        cluster.listenerToken = try loop.register(
            cluster.listener, .readable, EventHandler { [weak self] _, _, _ in self?.acceptConnections() })
        let addresses = Platform.localIPv4Addresses()
        let step = try SlurmStep(
            nodes: nodes, cpusPerTask: cpusPerTask, host: .init(port: cluster.port, addresses: addresses),
            secret: cluster.secret)
        cluster.step = step
        settings.logger.info(
            "starting worker hosts on \(nodes) nodes",
            metadata: ["command": "\(step.command.joined(separator: " "))", "port": "\(cluster.port)"])
        do {
            cluster.stepToken = try loop.register(
                step.processHandle, .readable, EventHandler { [weak self] _, _, _ in self?.stepExited() })
        } catch {
            // Nothing could watch srun: end it here, so closing does not wait for it.
            Platform.kill(step.pid, 9)
            _ = try? Platform.reap(step.processHandle, wait: true)
            Platform.close(step.processHandle)
            cluster.stepEnded = true
            throw error
        }
        let timeout = settings.handshakeTimeoutNanos
        loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, state == .starting, let cluster = self.cluster, cluster.hosts.count < cluster.expectedHosts
            else { return }  // every host joined: each worker's own start timer goes on
            let joined = cluster.hosts.map(\.hello.node).joined(separator: ", ")
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "only \(cluster.hosts.count) of \(cluster.expectedHosts) worker hosts joined the pool within \(Self.formatSeconds(timeout))\(joined.isEmpty ? "" : " (\(joined))"); srun said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check that the nodes can reach this one over TCP, or raise ProcessPool.Options.startTimeoutSeconds"
                ))
        }
    }

    /// Accepts waiting connections; each is authenticated on a thread of its own (blocking
    /// reads with a deadline), and only then handed to the loop.
    private func acceptConnections() {
        guard let cluster else { return }
        while true {
            let accepted: (descriptor: Int32, peer: String)?
            do {
                accepted = try Platform.acceptTCP(cluster.listener)
            } catch {
                // Out of descriptors, most likely: stop listening for a moment instead of
                // spinning on a connection that cannot be accepted.
                settings.logger.warning(
                    "accepting a connection failed: \(describe(error)); raise the open-files limit (ulimit -n) for pools of many workers"
                )
                loop.unregister(cluster.listenerToken, fd: cluster.listener)
                loop.schedule(afterNanoseconds: 100_000_000) { [weak self] in
                    guard let self, state == .starting || state == .running else { return }
                    cluster.listenerToken =
                        (try? loop.register(
                            cluster.listener, .readable,
                            EventHandler { [weak self] _, _, _ in self?.acceptConnections() })) ?? 0
                }
                return
            }
            guard let (fd, peer) = accepted else { return }
            guard handshakes.add(1, ordering: .relaxed).newValue <= Self.maximumHandshakes else {
                handshakes.subtract(1, ordering: .relaxed)
                settings.logger.warning("refused a connection from \(peer): too many handshakes at once")
                Platform.close(fd)
                continue
            }
            let secret = cluster.secret
            let logger = settings.logger
            do {
                try OSThread.start(name: "mp-handshake") { [self] in
                    defer { handshakes.subtract(1, ordering: .relaxed) }
                    do {
                        var channel = BlockingChannel(descriptor: fd, maximumPayload: Authentication.maximumPayload)
                        try channel.limitTime(seconds: Authentication.timeoutSeconds)
                        let client = try Authentication.acceptClient(&channel, secret: secret)
                        var hello: ClusterMessage.HostHello?
                        if client.role == .host {
                            let frame = try channel.receive(expecting: .hostHello, "the worker host's hello")
                            hello = try ClusterMessage.decode(frame) { try ClusterMessage.HostHello(&$0) }
                        }
                        guard channel.assembler.bufferedByteCount == 0 else {
                            throw MultiprocessingError(.malformedFrame, "the client sent more than the handshake")
                        }
                        try channel.limitTime(seconds: nil)
                        try Platform.setNonBlocking(fd)
                        let joining = hello
                        loop.execute { [self] in connectionAuthenticated(fd, client, joining, peer: peer) }
                    } catch {
                        Platform.close(fd)
                        logger.warning(
                            "refused a connection from \(peer): \(describe(error)); nothing runs for it")
                    }
                }
            } catch {
                handshakes.subtract(1, ordering: .relaxed)
                Platform.close(fd)
            }
        }
    }

    /// An authenticated connection: a worker host joining, or a remote worker's channel.
    private func connectionAuthenticated(
        _ fd: Int32, _ client: Authentication.Client, _ hello: ClusterMessage.HostHello?, peer: String
    ) {
        guard let cluster, state == .starting || state == .running else {
            Platform.close(fd)
            return
        }
        if let hello {
            guard hello.buildID == buildID else {
                Platform.close(fd)
                let error = MultiprocessingError(
                    .protocolMismatch,
                    "the worker host on node \(hello.node) runs a different build of the program: the executable must be the same file at the same path on every node (copy it to node-local disks with sbcast, or keep it on a shared filesystem)"
                )
                settings.logger.warning("refused a connection from \(peer): \(error.message)")
                if state == .starting { failStart(error) }
                return
            }
            guard cluster.hosts.count < cluster.expectedHosts else {
                Platform.close(fd)
                settings.logger.warning(
                    "refused a connection from \(peer): all \(cluster.expectedHosts) worker hosts have joined")
                return
            }
            hostJoined(RemoteHost(hello: hello, descriptor: fd), cluster)
            return
        }
        guard let pending = cluster.pending.removeValue(forKey: client.workerID), !pending.host.lost else {
            Platform.close(fd)
            settings.logger.warning("refused a connection from \(peer): no worker \(client.workerID) was started")
            return
        }
        loop.cancelTimer(pending.timer)
        let worker = WorkerConnection(
            slot: pending.slot, channel: fd, host: pending.host, workerID: client.workerID,
            maximumPayload: maximumPayload)
        slots[pending.slot] = worker
        timeline?.workerStarted(worker)
        do {
            try registerChannel(worker)
        } catch {
            brokenChannel(worker, .from(error))
            return
        }
        settings.logger.debug("worker connected", metadata: Self.metadata(worker))
        startHandshakeTimer(worker)
    }

    private func hostJoined(_ host: RemoteHost, _ cluster: ClusterState) {
        cluster.hosts.append(host)
        do {
            host.connection.token = try loop.register(
                host.connection.descriptor, [.readable, .writable, .edgeTriggered],
                EventHandler { [weak self, unowned host] readable, writable, hangup in
                    if writable { try? host.connection.flush() }
                    if readable || hangup { self?.hostEvent(host) }
                })
        } catch {
            hostLost(host, .from(error))
            return
        }
        settings.logger.info(
            "worker host joined",
            metadata: [
                "node": "\(host.hello.node)", "workers": "\(host.hello.workers)", "pid": "\(host.hello.pid)",
                "cpus": "\(host.hello.reason)",
            ])
        for _ in 0..<host.hello.workers {
            let slot = slots.count
            slots.append(nil)
            slotHosts.append(host)
            startFailures.append(0)
            statistics.addSlot(host: host.hello.node)
            host.slots.append(slot)
            requestRemoteWorker(slot: slot, on: host)
        }
    }

    /// Asks `host` to start a worker for `slot`; it connects back with the worker's id.
    private func requestRemoteWorker(slot: Int, on host: RemoteHost) {
        guard let cluster, !host.lost else { return }
        let workerID = cluster.nextWorkerID
        cluster.nextWorkerID += 1
        let order = ClusterMessage.StartWorker(
            workerID: workerID, slot: slot, maximumPayload: maximumPayload,
            timesItems: settings.itemTimeoutNanos != nil, itemTimeoutNanos: settings.itemTimeoutNanos ?? 0)
        let timeout = settings.handshakeTimeoutNanos
        let timer = loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, cluster.pending.removeValue(forKey: workerID) != nil else { return }
            remoteStartFailed(
                slot: slot,
                MultiprocessingError(
                    .handshakeFailed,
                    "the worker host on node \(host.hello.node) did not connect worker \(slot) within \(Self.formatSeconds(timeout))"
                ))
        }
        cluster.pending[workerID] = .init(slot: slot, host: host, timer: timer)
        guard let frame = try? order.frame() else { return }
        host.connection.send(frame)
    }

    /// A remote worker could not be started: fail the pool's start, or try again.
    private func remoteStartFailed(slot: Int, _ error: MultiprocessingError) {
        startFailures[slot] += 1
        lastStartError = error
        if state == .starting {
            failStart(error)
        } else if state == .running && !retiredSlots.contains(slot) {
            respawn(slot: slot, replacing: "worker \(slot)")
        }
    }

    /// Frames from a worker host: reports of its workers' exits.
    private func hostEvent(_ host: RemoteHost) {
        guard !host.lost else { return }
        do {
            let open = try host.connection.readAvailable(into: &readBuffer)
            while !host.lost, let frame = try host.connection.assembler.next() {
                if frame.kind == .hostSignal {
                    let signal = try ClusterMessage.decode(frame) { try $0.readByte("a signal number") }
                    Interruption.shared.forwarded(Int32(signal), from: "the worker host on node \(host.hello.node)")
                    continue
                }
                guard frame.kind == .workerExited else {
                    throw MultiprocessingError(
                        .malformedFrame, "the worker host on node \(host.hello.node) sent a \(frame.kind) frame")
                }
                let report = try ClusterMessage.decode(frame) { try ClusterMessage.WorkerExited(&$0) }
                remoteWorkerExited(report, host)
            }
            if !open { hostLost(host, nil) }
        } catch {
            hostLost(host, .from(error))
        }
    }

    private func remoteWorkerExited(_ report: ClusterMessage.WorkerExited, _ host: RemoteHost) {
        if let pending = cluster?.pending.removeValue(forKey: report.workerID) {
            loop.cancelTimer(pending.timer)
            let message =
                report.message.isEmpty
                ? "worker \(pending.slot) on node \(host.hello.node) \(report.termination) before connecting to this program"
                : report.message
            remoteStartFailed(slot: pending.slot, MultiprocessingError(.spawnFailed, message))
            return
        }
        let candidates = allWorkers
        guard let worker = candidates.first(where: { $0.remoteHost === host && $0.workerID == report.workerID })
        else { return }
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

    /// A worker host's connection ended: its node is lost with every worker on it. Their
    /// work is retried elsewhere or fails (``settleLostWork(_:_:)``), and their slots stay empty.
    private func hostLost(_ host: RemoteHost, _ error: MultiprocessingError?) {
        guard !host.lost else { return }
        host.lost = true
        host.connection.close(loop: loop)
        let node = host.hello.node
        if state == .starting || state == .running {
            settings.logger.warning(
                "lost the worker host on node \(node)\(error.map { ": \($0.message)" } ?? ""); its \(host.slots.count) workers are gone"
            )
        }
        if let cluster {
            for (id, pending) in cluster.pending where pending.host === host {
                loop.cancelTimer(pending.timer)
                cluster.pending[id] = nil
            }
        }
        retiredSlots.formUnion(host.slots)
        statistics.lost.formUnion(host.slots)
        if state == .starting {
            let said = cluster?.step?.lastErrorLines ?? ""
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "the worker host on node \(node) left while the pool was starting\(error.map { " (\($0.message))" } ?? ""); srun said: \(said.isEmpty ? "nothing" : said)"
                ))
        }
        for worker in allWorkers where worker.remoteHost === host {
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

    /// `srun` exited: every host of the step is gone (or about to be).
    private func stepExited() {
        guard let cluster, let step = cluster.step, !cluster.stepEnded else { return }
        guard let termination = Self.reapIfExited(step.processHandle) else { return }
        cluster.stepEnded = true
        loop.unregister(cluster.stepToken, fd: step.processHandle)
        Platform.close(step.processHandle)
        if state == .starting {
            step.waitForErrorOutput(milliseconds: 500)
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "the Slurm step that starts the worker hosts on the other nodes ended (srun \(termination)) before the pool was ready. Slurm said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check what the job asked for (--nodes, --cpus-per-task, --mem-per-cpu), or set MP_NODES=1 to stay on this node. Command: \(step.command.joined(separator: " "))"
                ))
        } else if state == .running {
            for host in cluster.hosts { hostLost(host, MultiprocessingError(.nodesUnavailable, "srun \(termination)")) }
        }
        finishClosingIfDone()
    }

    /// Closing: the hosts' connections close, so each host kills its workers and exits,
    /// which ends the `srun` step; the pool is closed once srun has exited.
    private func closeCluster(_ cluster: ClusterState) {
        loop.unregister(cluster.listenerToken, fd: cluster.listener)
        Platform.close(cluster.listener)
        for (_, pending) in cluster.pending { loop.cancelTimer(pending.timer) }
        cluster.pending.removeAll()
        for host in cluster.hosts where !host.lost { hostLost(host, nil) }
        if cluster.step == nil { cluster.stepEnded = true }
    }

    // MARK: - Closing

    private func beginClosing() {
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
                Platform.kill(step.pid, SIGTERM)
                killTimer = loop.schedule(afterNanoseconds: Self.exitGraceNanos * 5) { Platform.kill(step.pid, 9) }
            }
        }
        finishClosingIfDone()
    }

    /// Writes the timeline's files, when the pool keeps a timeline: at close, and when a
    /// signal interrupts the pool (with what it has then, in case the program exits before
    /// the pool has closed; `final` is false for an interrupted pool, both times). A failure
    /// is a warning on stderr.
    private func writeTimeline(final: Bool) {
        guard let timeline else { return }
        do {
            try timeline.write(report: currentReport(), final: final)
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: could not write the timeline \(timeline.path): \(describe(error))\n")
        }
    }

    private func finishClosingIfDone() {
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
