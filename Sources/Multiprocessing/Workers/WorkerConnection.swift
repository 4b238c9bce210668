#if os(Linux)
/// The parent's view of one worker process: its channel, its process handle, the frames
/// waiting to be written to it and the chunks it holds. Touched only by the event loop's
/// owner.
final class WorkerConnection {
    /// A chunk sent to this worker and not yet answered. The worker runs chunks in the
    /// order it receives them and answers in that order, but it may have run several and
    /// still hold their results: its progress page names the one it runs.
    struct InFlight {
        let callID: UInt64
        /// The chunk, with its encoded task (kept so that it can be re-sent elsewhere).
        let chunk: CallSchedule<TaskFrame>.Chunk
    }

    enum Phase {
        case handshaking
        /// Running the pool's initializer.
        case initializing
        case ready
        /// The channel is closed or broken; waiting for the process to be reaped.
        case exiting
    }

    let slot: Int
    /// The worker's process id (for a remote worker: on its node, known from its hello).
    var pid: Int32
    /// A pidfd, readable once the process exits, for a process of this node, which the
    /// supervisor reaps; -1 when its launcher reports its exit (a worker on another node).
    let processHandle: Int32
    /// Local workers: their stderr, forwarded to this process's; nil for remote ones.
    let output: WorkerOutput?
    /// Local workers: where the worker notes its progress; remote ones report it when they exit.
    let progressPage: ProgressPage?
    /// What started it, and its name there (``WorkerLauncher/stopWorker(pid:id:)``).
    let launcher: any WorkerLauncher
    let launchID: UInt64
    /// How the worker ended, as its launcher reported it (a worker on another node).
    var exitReport: ClusterMessage.WorkerExited?
    /// Its end was settled (``Supervisor`` settles each worker once).
    var ended = false
    var host = Platform.hostName
    var phase = Phase.handshaking
    /// Why the supervisor killed this worker, when it did.
    enum StopReason: Equatable {
        /// The call it was running was cancelled: its death fails no item.
        case cancelled
        /// Its current item ran past the per-item timeout (nanoseconds).
        case timedOut(UInt64)
        /// The pool was closing, and the worker had not exited within the grace period.
        case closing
    }
    var stopReason: StopReason?
    /// Its track in the pool's timeline (``TimelineRecorder``); -1 when there is none.
    var timelineTrack = -1
    /// Items answered, and items sent (for recycling after N items).
    var itemsRun = 0
    var itemsQueued = 0
    /// Chunks sent and not yet answered, oldest first.
    private(set) var inFlight: [InFlight] = []
    /// The bytes of the task frames of ``inFlight``.
    private(set) var inFlightBytes = 0

    /// When the worker could start the oldest chunk in flight (monotonic nanoseconds): when
    /// that chunk was sent to the idle worker, or when the result before it was read. A
    /// chunk's clock runs from here until its result is read (decoding, running, encoding
    /// and writing all count); per-item start times in the progress page move it forward.
    private(set) var clockStartNanos: UInt64 = 0
    /// The worker completed the start-up handshake (said hello): a death after it, while an
    /// initializer runs, is the initializer's failure.
    var saidHello = false
    /// The worker became ready once (completed its start-up, initializer included).
    var becameReady = false

    /// Notes a chunk sent to this worker.
    func sent(_ chunk: InFlight) {
        if inFlight.isEmpty { clockStartNanos = Platform.monotonicNanos() }
        inFlight.append(chunk)
        inFlightBytes += chunk.chunk.payload.bytes.count
    }

    /// Notes that the oldest chunk in flight was answered, at `now`: the next one's clock starts.
    func answeredOldest(at now: UInt64) {
        let answered = inFlight.removeFirst()
        inFlightBytes -= answered.chunk.payload.bytes.count
        clockStartNanos = now
    }

    /// How long the worker has held the work it is on, and that work's items: from the
    /// chunk's clock start, or the start of its current item when the page shows a later one.
    /// (``WorkClock/held(oldest:running:clockStartNanos:now:)`` decides.)
    func heldWork(now: UInt64) -> WorkClock.Held? {
        guard let oldest = inFlight.first else { return nil }
        var running: (task: Message.Task, position: WorkerPosition)?
        var callID = oldest.callID
        if let page = progressPage {
            let position = WorkerPosition(page.snapshot())
            if position.phase != .idle, let chunk = inFlight.first(where: { $0.chunk.id == position.chunkID }) {
                running = (chunk.chunk.payload.task, position)
                callID = chunk.callID
            }
        }
        var held = WorkClock.held(
            oldest: oldest.chunk.payload.task, running: running, clockStartNanos: clockStartNanos, now: now)
        held.callID = callID
        return held
    }

    /// Forgets every chunk in flight (the supervisor has settled them).
    func forgetInFlight() {
        inFlight.removeAll()
        inFlightBytes = 0
    }
    var installed: Set<UInt64> = []
    var handshakeTimer: UInt64?
    /// Why the connection broke, when it broke before the process exited.
    var connectionError: MultiprocessingError?
    /// The last fatal message the worker sent before exiting.
    var fatalMessage: Message.Failure?
    let connection: FramedConnection
    var processToken: UInt64 = 0

    /// A worker its launcher started, whose channel is open.
    init(_ launched: LaunchedWorker, launcher: any WorkerLauncher, maximumPayload: Int) {
        slot = launched.slot
        pid = launched.pid
        processHandle = launched.processHandle
        connection = FramedConnection(launched.channel, maximumPayload: maximumPayload)
        output = launched.output >= 0 ? WorkerOutput(descriptor: launched.output) : nil
        progressPage = launched.progress
        self.launcher = launcher
        launchID = launched.id
        host = launched.node
    }

    /// Whether its process is this node's, watched and reaped here (else its launcher
    /// reports its exit, and its host times its items).
    var ownsProcess: Bool { processHandle >= 0 }

    var identity: MultiprocessingError.WorkerIdentity {
        MultiprocessingError.WorkerIdentity(slot: slot, pid: pid, host: host)
    }

    var channel: Int32 { connection.descriptor }
    var hasChannel: Bool { connection.isOpen }
    var assembler: FrameAssembler {
        get { connection.assembler }
        _modify { yield &connection.assembler }
    }

    /// Where the worker is in its chunk: its progress page, or (remote) what its host
    /// read from the page after the worker exited.
    func position() -> WorkerPosition {
        if let progressPage { return WorkerPosition(progressPage.snapshot()) }
        guard let report = exitReport else { return .idle }
        let phase = ProgressPage.Phase(rawValue: UInt64(report.phase)) ?? .idle
        return WorkerPosition(.init(chunkID: report.chunkID, phase: phase, offset: report.offset, startedNanos: 0))
    }

    /// Kills the worker process (SIGKILL), through its launcher (its node's host, for a
    /// worker on another node).
    func kill() { launcher.stopWorker(pid: pid, id: launchID) }

    func send(_ frame: [UInt8]) throws { try connection.sendOrThrow(frame) }
    /// Queues a frame for the next ``flush()`` (see ``FramedConnection/queue(_:)``).
    func queue(_ frame: [UInt8]) { connection.queue(frame) }
    var hasQueuedFrames: Bool { connection.hasQueuedFrames }
    func flush() throws { try connection.flush() }
    func readAvailable(into buffer: inout [UInt8]) throws -> Bool { try connection.readAvailable(into: &buffer) }

    /// Closes the channel: the worker reads end of file and exits (a busy one is ended by
    /// its lifeline thread, which sees the channel's end).
    func closeChannel(loop: EventLoop) {
        guard connection.isOpen else { return }
        connection.close(loop: loop)
    }

    /// Releases the process handle once the process has been reaped, and forwards the
    /// rest of its stderr (its last words, for the error about its death).
    func closeProcessHandle(loop: EventLoop) {
        output?.finish(loop: loop)
        guard processHandle >= 0 else { return }
        loop.unregister(processToken, fd: processHandle)
        Platform.close(processHandle)
    }

    /// How the worker ended, in words. When the pool killed it (SIGKILL), the pool's
    /// reason; otherwise the termination's own words (for SIGKILL, the hint about the
    /// kernel's out-of-memory killer).
    func endDescription(_ termination: ProcessTermination) -> String {
        guard termination.signal == Platform.Signal.kill, let reason = stopDescription else {
            return termination.description
        }
        return "was stopped by the pool (SIGKILL): \(reason)"
    }

    /// Why the pool stopped this worker, when it did.
    var stopDescription: String? {
        switch stopReason {
        case .cancelled: return "the call it was running was cancelled"
        case .timedOut(let limit):
            return "its item ran longer than the per-item timeout of \(Supervisor.formatSeconds(limit))"
        case .closing: return "it had not exited within the grace period after the pool was closed"
        case nil: return connectionError != nil ? "its connection had failed" : nil
        }
    }

    /// The last lines the worker wrote to stderr before it died, as ``WorkerOutput/lastWords``.
    var lastWords: String? { output?.lastWords }
}

extension WorkerPosition {
    /// The position a worker's progress page shows.
    init(_ snapshot: ProgressPage.Snapshot) {
        let phase: Phase
        switch snapshot.phase {
        case .idle: phase = .idle
        case .decoding: phase = .decoding
        case .running: phase = .running
        case .encoding: phase = .encoding
        }
        self.init(chunkID: snapshot.chunkID, phase: phase, offset: snapshot.offset, startedNanos: snapshot.startedNanos)
    }
}
#endif
