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
    /// Local workers: a pidfd, readable once the process exits; -1 for remote ones.
    let processHandle: Int32
    /// Local workers: their stderr, forwarded to this process's; nil for remote ones.
    let output: WorkerOutput?
    /// Local workers: where the worker notes its progress; remote ones report it when they exit.
    let progressPage: ProgressPage?
    /// Remote workers: the worker host that started this worker, and the worker's id there.
    let remoteHost: RemoteHost?
    let workerID: UInt64
    /// Remote workers: how the worker ended, as its host reported it.
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

    /// A worker process on this node, just spawned.
    init(slot: Int, spawned: LocalLauncher.SpawnedWorker, maximumPayload: Int) {
        self.slot = slot
        pid = spawned.pid
        processHandle = spawned.processHandle
        connection = FramedConnection(spawned.channel, maximumPayload: maximumPayload)
        output = spawned.output >= 0 ? WorkerOutput(descriptor: spawned.output) : nil
        progressPage = spawned.progress
        remoteHost = nil
        workerID = 0
    }

    /// A worker on another node, whose authenticated TCP channel just arrived.
    init(slot: Int, channel: Int32, host remote: RemoteHost, workerID: UInt64, maximumPayload: Int) {
        self.slot = slot
        pid = 0
        processHandle = -1
        connection = FramedConnection(channel, maximumPayload: maximumPayload)
        output = nil
        progressPage = nil
        remoteHost = remote
        self.workerID = workerID
        host = remote.hello.node
    }

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

    /// Kills the worker process (SIGKILL), through its host when it runs on another node.
    func kill() {
        if let remoteHost {
            if let frame = try? Frame.encode(.stopWorker, payload: { $0.write(varint: workerID) }) {
                remoteHost.connection.send(frame)
            }
        } else {
            Platform.kill(pid, 9)
        }
    }

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
        guard case .signaled(let signal) = termination, signal == 9, let reason = stopDescription else {
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

/// A non-blocking framed connection served by the event loop: frames queued for writing,
/// and an assembler for what arrives. Used for workers' channels and worker hosts'
/// control connections alike.
final class FramedConnection {
    let descriptor: Int32
    var assembler: FrameAssembler
    private var outbox: [[UInt8]] = []
    private var outboxOffset = 0
    private(set) var isOpen = true
    var token: UInt64 = 0

    init(_ descriptor: Int32, maximumPayload: Int) {
        self.descriptor = descriptor
        assembler = FrameAssembler(maximumPayload: maximumPayload)
    }

    /// Queues a frame and writes what the socket takes now; a broken connection is
    /// noticed by the reader (end of file), so errors are dropped here.
    func send(_ frame: [UInt8]) {
        try? sendOrThrow(frame)
    }

    /// Queues a frame and writes what the socket takes now.
    func sendOrThrow(_ frame: [UInt8]) throws {
        guard isOpen else { return }
        outbox.append(frame)
        try flush()
    }

    /// Queues a frame to be written by the next ``flush()``: frames queued together go out
    /// in one write.
    func queue(_ frame: [UInt8]) {
        guard isOpen else { return }
        outbox.append(frame)
    }

    var hasQueuedFrames: Bool { !outbox.isEmpty }

    /// Small frames written together: one system call (and one wakeup of the reader) for a
    /// batch of tiny tasks instead of one per task.
    static let coalescedBytes = 1 << 16

    /// Writes queued frames until the socket is full (the loop calls again when writable).
    func flush() throws {
        coalesceSmallFrames()
        while isOpen, let first = outbox.first {
            let written: Int
            do {
                written = try first.withUnsafeBytes { raw throws in
                    try Platform.writeNonBlocking(descriptor, UnsafeRawBufferPointer(rebasing: raw[outboxOffset...]))
                }
            } catch let error as MultiprocessingError where Platform.isPeerGone(error) {
                // The peer is gone; its end (seen by the reader or a process handle) settles its work.
                outbox.removeAll()
                return
            }
            if written == 0 { return }
            outboxOffset += written
            if outboxOffset == first.count {
                outbox.removeFirst()
                outboxOffset = 0
                coalesceSmallFrames()
            }
        }
    }

    /// The sizes of the buffers queued for writing (for tests).
    var queuedBufferSizes: [Int] { outbox.map(\.count) }

    /// Joins the leading small frames into one, up to ``coalescedBytes``.
    func coalesceSmallFrames() {
        guard outbox.count > 1, outbox[0].count + outbox[1].count <= Self.coalescedBytes else { return }
        var end = 2
        var total = outbox[0].count + outbox[1].count
        while end < outbox.count, total + outbox[end].count <= Self.coalescedBytes {
            total += outbox[end].count
            end += 1
        }
        var joined: [UInt8] = []
        joined.reserveCapacity(total)
        for frame in outbox[0..<end] { joined.append(contentsOf: frame) }
        outbox.replaceSubrange(0..<end, with: CollectionOfOne(joined))
    }

    /// Reads everything available; returns false at end of file (or when the peer reset
    /// the connection: a worker that dies with unread data in its socket does that).
    func readAvailable(into buffer: inout [UInt8]) throws -> Bool {
        while isOpen {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws in
                    try Platform.readNonBlocking(descriptor, into: raw.baseAddress!, count: raw.count)
                }
            } catch let error as MultiprocessingError where Platform.isPeerGone(error) {
                return false
            }
            guard let n else { return true }
            if n == 0 { return false }
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            // A short read drained the socket: data arriving later raises a new edge, so
            // the read that would only say EAGAIN is skipped (one system call per message).
            if n < buffer.count { return true }
        }
        return false
    }

    func close(loop: EventLoop) {
        guard isOpen else { return }
        isOpen = false
        loop.unregister(token, fd: descriptor)
        Platform.close(descriptor)
        outbox.removeAll()
    }
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

/// Forwards event-loop readiness to a closure.
final class EventHandler: EventLoop.Handler {
    let onEvent: (_ readable: Bool, _ writable: Bool, _ hangup: Bool) -> Void
    init(_ onEvent: @escaping (Bool, Bool, Bool) -> Void) { self.onEvent = onEvent }
    func handle(readable: Bool, writable: Bool, hangup: Bool) { onEvent(readable, writable, hangup) }
}
#endif
