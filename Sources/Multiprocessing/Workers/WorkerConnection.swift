#if os(Linux)
/// The parent's view of one worker process: its channel, its process handle, the frames
/// waiting to be written to it and the chunks it holds. Lives on the event loop thread.
final class WorkerConnection {
    /// A chunk sent to this worker and not yet answered. The worker runs chunks in the
    /// order it receives them, so the first one is the one running.
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
    let pid: Int32
    let processHandle: Int32
    let channel: Int32
    private(set) var lifeline: Int32
    var host = Platform.shortHostName()
    var phase = Phase.handshaking
    /// Why the supervisor killed this worker, when it did.
    enum StopReason: Equatable {
        /// The call it was running was cancelled: its death fails no item.
        case cancelled
        /// Its current item ran past the per-item timeout (nanoseconds).
        case timedOut(UInt64)
    }
    var stopReason: StopReason?
    /// Items answered, and items sent (for recycling after N items).
    var itemsRun = 0
    var itemsQueued = 0
    /// Where the worker notes what it is doing.
    let progress: ProgressPage
    var inFlight: [InFlight] = []
    var installed: Set<UInt64> = []
    var handshakeTimer: UInt64?
    /// Why the connection broke, when it broke before the process exited.
    var connectionError: MultiprocessingError?
    /// The last fatal message the worker sent before exiting.
    var fatalMessage: Message.Failure?
    var assembler: FrameAssembler
    private var outbox: [[UInt8]] = []
    private var outboxOffset = 0
    private var channelOpen = true
    var channelToken: UInt64 = 0
    var processToken: UInt64 = 0

    init(slot: Int, spawned: LocalLauncher.SpawnedWorker, maximumPayload: Int) {
        self.slot = slot
        pid = spawned.pid
        processHandle = spawned.processHandle
        channel = spawned.channel
        lifeline = spawned.lifeline
        progress = spawned.progress
        assembler = FrameAssembler(maximumPayload: maximumPayload)
    }

    var identity: MultiprocessingError.WorkerIdentity {
        MultiprocessingError.WorkerIdentity(slot: slot, pid: pid, host: host)
    }

    var hasChannel: Bool { channelOpen }

    /// Queues a frame and writes what the socket takes now.
    func send(_ frame: [UInt8]) throws {
        guard channelOpen else { return }
        outbox.append(frame)
        if outbox.count == 1 { try flush() }
    }

    /// Writes queued frames until the socket is full (the loop calls again when writable).
    func flush() throws {
        while channelOpen, let first = outbox.first {
            let written: Int
            do {
                written = try first.withUnsafeBytes { raw throws in
                    try Platform.writeNonBlocking(channel, UnsafeRawBufferPointer(rebasing: raw[outboxOffset...]))
                }
            } catch let error as MultiprocessingError where Platform.isPeerGone(error) {
                // The worker is gone; its exit (seen through the process handle) settles its work.
                outbox.removeAll()
                return
            }
            if written == 0 { return }
            outboxOffset += written
            if outboxOffset == first.count {
                outbox.removeFirst()
                outboxOffset = 0
            }
        }
    }

    /// Reads everything available; returns false at end of file (or when the peer reset
    /// the connection: a worker that dies with unread data in its socket does that).
    func readAvailable(into buffer: inout [UInt8]) throws -> Bool {
        while channelOpen {
            let n: Int?
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws in
                    try Platform.readNonBlocking(channel, into: raw.baseAddress!, count: raw.count)
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

    /// Closes the channel and the lifeline: the worker reads end of file and exits.
    func closeChannel(loop: EventLoop) {
        guard channelOpen else { return }
        channelOpen = false
        loop.unregister(channelToken, fd: channel)
        Platform.close(channel)
        Platform.close(lifeline)
        outbox.removeAll()
    }

    /// Releases the process handle once the process has been reaped.
    func closeProcessHandle(loop: EventLoop) {
        loop.unregister(processToken, fd: processHandle)
        Platform.close(processHandle)
    }
}

/// Forwards event-loop readiness to a closure.
final class EventHandler: EventLoop.Handler {
    let onEvent: (_ readable: Bool, _ writable: Bool, _ hangup: Bool) -> Void
    init(_ onEvent: @escaping (Bool, Bool, Bool) -> Void) { self.onEvent = onEvent }
    func handle(readable: Bool, writable: Bool, hangup: Bool) { onEvent(readable, writable, hangup) }
}
#endif
