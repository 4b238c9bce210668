#if os(Linux)
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

/// Forwards event-loop readiness to a closure.
final class EventHandler: EventLoop.Handler {
    let onEvent: (_ readable: Bool, _ writable: Bool, _ hangup: Bool) -> Void
    init(_ onEvent: @escaping (Bool, Bool, Bool) -> Void) { self.onEvent = onEvent }
    func handle(readable: Bool, writable: Bool, hangup: Bool) { onEvent(readable, writable, hangup) }
}
#endif
