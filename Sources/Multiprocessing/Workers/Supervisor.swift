import Logging
import Synchronization

#if os(Linux)

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

    /// How many chunks one worker holds at once, tiny chunks aside (``QueueDepth``).
    static let chunksPerWorker = QueueDepth.chunksPerWorker
    /// A slot whose worker fails to start this many times in a row is given up.
    static let maximumConsecutiveStartFailures = 3
    /// How long a closing pool waits for workers to exit before it kills them.
    static let exitGraceNanos: UInt64 = 2_000_000_000

    let loop: EventLoop
    /// Where the workers run: this node's processes, or the nodes of a Slurm allocation.
    let launcher: any WorkerLauncher
    let settings: SupervisorSettings
    /// Worker slots in use (on lost nodes excluded).
    var workerCount: Int { slots.count - retiredSlots.count }
    var maximumPayload: Int { settings.maximumPayload }
    let buildID = Platform.executableBuildID()

    var state = State.starting
    var slots: [WorkerConnection?]
    /// `pump()`'s list of workers that can still take a chunk, kept between pumps so that
    /// a pump allocates nothing (empty outside `pump()`).
    var pumpWalk: [WorkerConnection] = []
    /// Slots whose node was lost: never filled again.
    var retiredSlots: Set<Int> = []
    /// Workers that left their slot (recycled) and have not been reaped yet.
    var departed: [WorkerConnection] = []
    var startFailures: [Int]
    var calls: [UInt64: CallRecord] = [:]
    /// Calls that still have items to hand out, oldest first.
    var callOrder: [UInt64] = []
    var nextChunkID: UInt64 = 1
    var readBuffer = [UInt8](repeating: 0, count: 1 << 16)
    var startWaiter: CheckedContinuation<(workers: Int, description: String), any Error>?
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var killTimer: UInt64?
    var lastStartError: MultiprocessingError?
    /// Why the pool stopped, when a signal stopped it (later calls fail with it too).
    var interruption: MultiprocessingError?
    /// Why the pool can take no more work although it is open (no worker is left and none
    /// can be started: every node was lost, or every slot failed to start); later calls
    /// fail with it.
    var unusable: MultiprocessingError?
    /// Figures for the report: per slot, and for the whole pool.
    var statistics: PoolStatistics
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
        switch settings.placement {
        case .local:
            launcher = LocalLauncher(
                maximumPayload: settings.maximumPayload, timesItems: settings.itemTimeoutNanos != nil)
        case .nodes(let count, let cpusPerTask):
            launcher = SlurmLauncher(
                nodes: count, cpusPerTask: cpusPerTask, maximumPayload: settings.maximumPayload,
                handshakeTimeoutNanos: settings.handshakeTimeoutNanos, itemTimeoutNanos: settings.itemTimeoutNanos,
                logger: settings.logger)
        }
        self.settings = settings
        let local = settings.placement == .local ? settings.workerCount : 0
        slots = Array(repeating: nil, count: local)
        startFailures = Array(repeating: 0, count: local)
        let statistics = PoolStatistics(workers: local)
        self.statistics = statistics
        timeline = settings.timelinePath.map { TimelineRecorder(path: $0, originNanos: statistics.startNanos) }
        loop.afterIteration = { [weak self] in self?.flushDeliveries() }
        try loop.start(name: "mp-supervisor", stackBytes: Self.threadStackBytes)
    }

    /// Set by ``closeDetached()``, cleared when the pool is closed.
    var keptAliveUntilClosed: Supervisor?
    var queuedFramesFlushScheduled = false
    /// When the loop last woke to read a channel: the time results read then arrived.
    var wakeupNanos: UInt64 = 0
    /// Calls with events posted in this round of the event loop.
    var pendingDeliveries: [CallRecord] = []
    var progressTimerRunning = false
    /// Set when inline work passed over a stream: ``pump()`` then pumps again on the loop thread.
    var streamsWaitForLoopThread = false

    // MARK: - Entry points (any thread)

    /// Spawns every worker and returns, with the number of workers, when all have
    /// completed the handshake. A multi-node pool first starts its worker hosts.
    func start() async throws -> (workers: Int, description: String) {
        try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<(workers: Int, description: String), any Error>) in
            loop.execute { [self] in
                startWaiter = continuation
                do {
                    try launcher.start(loop: loop, delegate: self)
                } catch {
                    failStart(error)
                    return
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
    func currentReport() -> PoolReport {
        let live = allWorkers.compactMap { worker -> (slot: Int, cpu: Platform.CPUSeconds)? in
            guard worker.ownsProcess, !worker.ended, let cpu = Platform.processCPUTime(pid: worker.pid) else {
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
    /// Reaps the process behind a readable pidfd: how it ended, or nil when it has not
    /// (a spurious wakeup). A failed wait counts as `exited(-1)`.
    static func reapIfExited(_ handle: Int32) -> ProcessTermination? {
        do {
            return try Platform.reap(handle, wait: false)
        } catch {
            return .exited(-1)
        }
    }

    /// Every worker process not reaped yet: those in slots, and recycled ones still finishing.
    var allWorkers: [WorkerConnection] { slots.compactMap { $0 } + departed }

    // MARK: - Delivering events

    /// Posts an event for the task that waits on `call`. Events are handed over once per
    /// round of the event loop (``flushDeliveries()``): the results of the many small chunks
    /// read in one round wake the waiting task once, not once each.
    func post(_ call: CallRecord, _ event: CallEvent) {
        if call.outbox.isEmpty { pendingDeliveries.append(call) }
        call.outbox.append(event)
    }

    func flush(_ call: CallRecord) {
        guard !call.outbox.isEmpty else { return }
        let events = call.outbox
        call.outbox.removeAll()
        call.deliver(events)
    }

    /// Delivers every event posted in this round (the loop calls it after each round).
    func flushDeliveries() {
        for call in pendingDeliveries { flush(call) }
        pendingDeliveries.removeAll(keepingCapacity: true)
    }

    /// Delivers what is left for `call`, then ends its event stream.
    func forget(_ call: CallRecord) {
        flush(call)
        call.onForget()
    }
}
#endif
