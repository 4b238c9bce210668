/// Frames: how messages are cut out of a byte stream (a Unix socket pair today, TCP for
/// remote workers later: the same code for both).
///
/// ```
/// offset  size  field
/// 0       2     magic "MP" (0x4D 0x50)
/// 2       1     protocol version (``Frame/protocolVersion``)
/// 3       1     kind (``Frame/Kind``)
/// 4       4     payload length, little-endian UInt32
/// 8       n     payload
/// ```
/// A frame whose magic, version or kind is wrong, or whose length is above the
/// connection's limit, is an error for that connection: the reader never allocates more
/// than the limit, and never trusts a length before checking it.
struct Frame: Sendable {
    /// The version of this wire protocol. Bump it on any change to the frame or message layout.
    static let protocolVersion: UInt8 = 4
    static let magic: (UInt8, UInt8) = (0x4D, 0x50)
    static let headerSize = 8
    /// The default hard limit on one frame's payload (256 MiB). The pool's option
    /// `maximumFrameBytes` raises it for very large items.
    static let defaultMaximumPayload = 256 << 20
    /// The largest limit the format can express.
    static let absoluteMaximumPayload = Int(UInt32.max)

    /// What a frame carries.
    enum Kind: UInt8, Sendable {
        /// worker → parent, first frame: version, build id, pid, host.
        case hello = 1
        /// parent → worker: a call's function value, sent once per call per worker.
        case install = 2
        /// parent → worker: a chunk of inputs.
        case task = 3
        /// worker → parent: a chunk's results.
        case result = 4
        /// parent → worker: the call is over; forget its function.
        case release = 5
        /// worker → parent: the worker cannot go on (the message says why); it exits next.
        case fatal = 6
        /// worker → parent: a call's function could not be installed (type not found,
        /// value not decodable). The worker stays usable.
        case installFailed = 7
        /// parent → worker, after hello when the pool has an initializer: its type name
        /// and value.
        case initialize = 8
        /// worker → parent: the initializer ran; the worker takes work now.
        case ready = 9
        /// coordinator → TCP client, first frame: a fresh nonce to prove the secret with.
        case challenge = 10
        /// TCP client → coordinator: the client's nonce, its role and its proof (HMAC).
        case authenticate = 11
        /// coordinator → TCP client: the coordinator's proof; the connection is trusted.
        case authenticated = 12
        /// worker host → coordinator, after authentication: who it is, how many workers.
        case hostHello = 13
        /// coordinator → worker host: start a worker that connects back for this slot.
        case startWorker = 14
        /// coordinator → worker host: kill that worker (SIGKILL).
        case stopWorker = 15
        /// worker host → coordinator: a worker exited, how, and where it was in its chunk.
        case workerExited = 16
        /// worker host → coordinator: the host received SIGTERM (Slurm's `--signal` without
        /// `B:`, the time limit's warning, reaches only the step's tasks).
        case hostSignal = 17
    }

    var kind: Kind
    var payload: [UInt8]

    /// Writes a frame's header and payload into one contiguous array.
    /// - Parameter capacity: the expected frame size, when known (saves regrowing large frames).
    static func encode(_ kind: Kind, capacity: Int = 64, payload: (inout ByteWriter) throws -> Void) throws -> [UInt8] {
        var writer = start(kind, capacity: capacity)
        try payload(&writer)
        return try seal(&writer, kind)
    }

    /// A writer holding a frame's header, its length still 0: write the payload after it,
    /// then ``seal(_:_:)`` it (what ``encode(_:capacity:payload:)`` does, for a payload
    /// written in several steps).
    static func start(_ kind: Kind, capacity: Int = 64) -> ByteWriter {
        var writer = ByteWriter(reservingCapacity: max(capacity, 64))
        writer.write(magic.0)
        writer.write(magic.1)
        writer.write(protocolVersion)
        writer.write(kind.rawValue)
        writer.write(fixed: UInt32(0))
        return writer
    }

    /// The bytes of a frame begun with ``start(_:capacity:)``, its length patched in.
    /// - Throws: ``MultiprocessingError/Code/frameTooLarge`` when the payload is larger
    ///   than the format can say.
    static func seal(_ writer: inout ByteWriter, _ kind: Kind) throws(MultiprocessingError) -> [UInt8] {
        let length = writer.count - headerSize
        guard length <= absoluteMaximumPayload else {
            throw MultiprocessingError(
                .frameTooLarge,
                "a \(kind) message of \(length) bytes is larger than the wire format's limit of \(absoluteMaximumPayload) bytes; send smaller items or split them"
            )
        }
        writer.patch(fixed: UInt32(length), at: 4)
        return writer.bytes
    }

    /// Checks a header and returns the kind and payload length.
    static func parseHeader(_ header: UnsafeRawBufferPointer, maximumPayload: Int) throws -> (Kind, Int) {
        precondition(header.count >= headerSize)
        guard header[0] == magic.0, header[1] == magic.1 else {
            throw MultiprocessingError(
                .malformedFrame,
                "the peer sent bytes that are not a swift-multiprocessing frame (bad magic 0x\(hex(header[0]))\(hex(header[1]))); something other than a worker of this program wrote to the connection"
            )
        }
        guard header[2] == protocolVersion else {
            throw MultiprocessingError(
                .protocolMismatch,
                "the peer speaks wire protocol version \(header[2]), this program speaks \(protocolVersion): both ends must be the same build of the program"
            )
        }
        guard let kind = Kind(rawValue: header[3]) else {
            throw MultiprocessingError(.malformedFrame, "the peer sent a frame of unknown kind \(header[3])")
        }
        let length = Int(header.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian)
        guard length <= maximumPayload else {
            throw MultiprocessingError(
                .frameTooLarge,
                "the peer sent a \(kind) frame of \(length) bytes, above this connection's limit of \(maximumPayload) bytes; if your items or results are really this large, raise ProcessPool.Options.maximumFrameBytes"
            )
        }
        return (kind, length)
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}

/// Cuts frames out of bytes as they arrive, in any pieces. Pure logic, no I/O.
///
/// With `readsLargeFramesDirectly` (a worker reading its tasks), a large frame
/// (``directThreshold`` bytes or more) is not gathered in the shared buffer: once its
/// header is in, its payload array is set to its final size and the rest of the frame is
/// read straight into it (``fillDirectly(_:)``), so the bytes are copied once, by the
/// kernel, instead of three times. A payload the reader is done with can be handed back
/// (``recycle(_:)``) and is filled again by the next large frame: fresh memory would cost
/// a page fault and a zeroed page every 4 KiB.
struct FrameAssembler {
    /// Payloads at least this large are read straight into their own array.
    static let directThreshold = 1 << 16

    let maximumPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var pending: (Frame.Kind, Int)?
    /// The payload being filled directly, and how much of it has arrived.
    private var direct: [UInt8] = []
    private var directFilled = 0
    private var isDirect = false
    private let readsLargeFramesDirectly: Bool
    /// A payload handed back by the reader, to be filled again.
    private var spare: [UInt8] = []

    init(maximumPayload: Int = Frame.defaultMaximumPayload, readsLargeFramesDirectly: Bool = false) {
        self.maximumPayload = maximumPayload
        self.readsLargeFramesDirectly = readsLargeFramesDirectly
    }

    /// Takes back the payload of a frame the reader has finished with (leaving `payload`
    /// empty), so that the next large frame reuses its memory.
    mutating func recycle(_ payload: inout [UInt8]) {
        // Up to 64 MiB is kept: an idle worker should not hold on to one huge item's memory.
        guard readsLargeFramesDirectly, payload.capacity >= Self.directThreshold, payload.capacity <= 64 << 20
        else { return }
        spare = payload
        payload = []
    }

    /// Bytes received but not yet returned as frames.
    var bufferedByteCount: Int { buffer.count - start + (isDirect ? directFilled : 0) }

    /// Adds received bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        var bytes = bytes
        if isDirect {
            let taken = min(bytes.count, direct.count - directFilled)
            direct.withUnsafeMutableBytes { target in
                UnsafeMutableRawBufferPointer(rebasing: target[directFilled..<(directFilled + taken)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<taken]))
            }
            directFilled += taken
            bytes = UnsafeRawBufferPointer(rebasing: bytes[taken...])
            if bytes.isEmpty { return }
        }
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// While a large frame's payload is arriving: lets `read` write the next bytes straight
    /// into it (`read` gets the unfilled part and returns how many bytes it wrote; 0 means
    /// end of file). Returns `nil`, without calling `read`, when no such frame is pending.
    mutating func fillDirectly(_ read: (UnsafeMutableRawBufferPointer) throws -> Int?) rethrows -> Int?? {
        guard isDirect, directFilled < direct.count else { return nil }
        let filled = directFilled
        let n = try direct.withUnsafeMutableBytes { target in
            try read(UnsafeMutableRawBufferPointer(rebasing: target[filled...]))
        }
        if let n { directFilled += n }
        return .some(n)
    }

    /// How many more bytes the frame being received needs (a hint for the read size).
    var bytesWanted: Int {
        if isDirect { return direct.count - directFilled }
        if let (_, length) = pending { return max(0, Frame.headerSize + length - bufferedByteCount) }
        return max(0, Frame.headerSize - bufferedByteCount)
    }

    /// The next complete frame, or `nil` when more bytes are needed.
    /// - Throws: ``MultiprocessingError`` for a malformed header; the connection is then unusable.
    mutating func next() throws -> Frame? {
        if isDirect {
            guard directFilled == direct.count, let (kind, _) = pending else { return nil }
            let payload = direct
            direct = []
            directFilled = 0
            isDirect = false
            pending = nil
            return Frame(kind: kind, payload: payload)
        }
        if pending == nil {
            guard buffer.count - start >= Frame.headerSize else { return nil }
            let header = try buffer.withUnsafeBytes { raw throws in
                try Frame.parseHeader(
                    UnsafeRawBufferPointer(rebasing: raw[start..<(start + Frame.headerSize)]),
                    maximumPayload: maximumPayload
                )
            }
            pending = header
            let available = buffer.count - start - Frame.headerSize
            if readsLargeFramesDirectly && header.1 >= Self.directThreshold && available < header.1 {
                // Move what has arrived of the payload into its own array (a recycled one
                // when there is one); the rest is read straight into it.
                let payloadStart = start + Frame.headerSize
                let length = header.1
                if spare.capacity >= length {
                    direct = spare
                    spare = []
                    if direct.count > length {
                        direct.removeSubrange(length...)
                    } else if direct.count < length {
                        direct.append(contentsOf: repeatElement(0, count: length - direct.count))
                    }
                } else {
                    spare = []
                    direct = [UInt8](unsafeUninitializedCapacity: length) { _, count in count = length }
                }
                direct.withUnsafeMutableBytes { target in
                    buffer.withUnsafeBytes { raw in
                        UnsafeMutableRawBufferPointer(rebasing: target[0..<available])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[payloadStart..<buffer.count]))
                    }
                }
                directFilled = available
                isDirect = true
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
                start = 0
                return nil
            }
            if buffer.capacity < start + Frame.headerSize + header.1 {
                buffer.reserveCapacity(start + Frame.headerSize + header.1)
            }
        }
        guard let (kind, length) = pending, buffer.count - start >= Frame.headerSize + length else { return nil }
        let payloadStart = start + Frame.headerSize
        let payload = Array(buffer[payloadStart..<(payloadStart + length)])
        start = payloadStart + length
        pending = nil
        return Frame(kind: kind, payload: payload)
    }
}
