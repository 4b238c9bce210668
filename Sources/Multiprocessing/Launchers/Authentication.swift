import Crypto

/// The shared secret of one multi-node pool: 32 random bytes, made fresh when the pool
/// starts. It reaches the worker hosts only through `srun`'s standard input (never a
/// command line or an environment variable, which other users of a node can read).
struct ClusterSecret: Sendable, Equatable {
    let bytes: [UInt8]

    static func random() -> ClusterSecret { ClusterSecret(bytes: Platform.randomBytes(32)) }

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses the line a worker host reads from its standard input (64 hex digits).
    init?(hex: some StringProtocol) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = Self.value(digits[index]), let low = Self.value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.bytes = bytes
    }

    var hex: String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }

    private static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// The challenge-response handshake on every TCP connection of a multi-node pool, in
/// both directions, before any other frame is read or sent:
///
/// ```
/// coordinator → client   challenge      Nc (32 random bytes)
/// client → coordinator   authenticate   Nw, role, workerID, HMAC(secret, "client" Nc Nw role workerID)
/// coordinator → client   authenticated  HMAC(secret, "coordinator" Nw Nc)
/// ```
/// Each side proves it knows the secret without sending it, and fresh nonces on both
/// sides make a recorded exchange useless. A connection that fails is closed; nothing runs
/// for it. Both sides use blocking I/O with a deadline, on threads of their own.
enum Authentication {
    /// How long either side waits for the other during the handshake.
    static let timeoutSeconds = 10
    /// The largest frame accepted before a connection is authenticated.
    static let maximumPayload = 4096

    /// What the coordinator learned about an authenticated client.
    struct Client: Sendable {
        let role: ClusterMessage.Role
        let workerID: UInt64
    }

    /// The coordinator's side. Throws ``MultiprocessingError/Code/authenticationFailed``
    /// when the client does not prove the secret, or ``MultiprocessingError/Code/malformedFrame``
    /// for bytes that are not the protocol.
    static func acceptClient(_ channel: inout BlockingChannel, secret: ClusterSecret) throws -> Client {
        let challenge = Platform.randomBytes(ClusterMessage.nonceSize)
        try channel.send(Frame.encode(.challenge) { $0.write(contentsOf: challenge) })
        let frame = try channel.receive(expecting: .authenticate, "an authentication message")
        let message = try ClusterMessage.decode(frame) { try ClusterMessage.Authenticate(&$0) }
        let expected = mac(
            secret, "client", challenge, message.nonce, [message.role.rawValue] + varint(message.workerID))
        guard constantTimeEqual(expected, message.mac) else {
            throw MultiprocessingError(
                .authenticationFailed,
                "the client's proof of the pool's secret is wrong (a different pool's worker host, or not a worker host at all)"
            )
        }
        let proof = mac(secret, "coordinator", message.nonce, challenge, [])
        try channel.send(Frame.encode(.authenticated) { $0.write(contentsOf: proof) })
        return Client(role: message.role, workerID: message.workerID)
    }

    /// The client's side (a worker host, or the channel of one of its workers). Throws
    /// ``MultiprocessingError/Code/authenticationFailed`` when the coordinator does not
    /// prove the secret.
    static func authenticate(
        _ channel: inout BlockingChannel, secret: ClusterSecret, role: ClusterMessage.Role, workerID: UInt64
    ) throws {
        let frame = try channel.receive(expecting: .challenge, "the coordinator's challenge")
        let challenge = try ClusterMessage.decode(frame) {
            Array(try $0.readBytes(ClusterMessage.nonceSize, "a nonce"))
        }
        let nonce = Platform.randomBytes(ClusterMessage.nonceSize)
        let proof = mac(secret, "client", challenge, nonce, [role.rawValue] + varint(workerID))
        try channel.send(
            ClusterMessage.Authenticate(nonce: nonce, role: role, workerID: workerID, mac: proof).frame())
        let answer = try channel.receive(expecting: .authenticated, "the coordinator's proof")
        let theirs = try ClusterMessage.decode(answer) {
            Array(try $0.readBytes(ClusterMessage.macSize, "a message authentication code"))
        }
        guard constantTimeEqual(theirs, mac(secret, "coordinator", nonce, challenge, [])) else {
            throw MultiprocessingError(
                .authenticationFailed,
                "the coordinator did not prove it holds this pool's secret: refusing to take work from it")
        }
    }

    static func mac(
        _ secret: ClusterSecret, _ label: String, _ first: [UInt8], _ second: [UInt8], _ extra: [UInt8]
    ) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: secret.bytes))
        hmac.update(data: Array(label.utf8))
        hmac.update(data: first)
        hmac.update(data: second)
        hmac.update(data: extra)
        return Array(hmac.finalize())
    }

    private static func varint(_ value: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(varint: value)
        return writer.bytes
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// A framed connection used with blocking reads and writes (the handshake, and the
/// worker host's control connection): one frame at a time, with a hard size limit.
struct BlockingChannel {
    let descriptor: Int32
    var assembler: FrameAssembler
    private var buffer = [UInt8](repeating: 0, count: 1 << 14)
    /// When reads and writes must be done (monotonic nanoseconds), if ever.
    private var deadline: UInt64?

    init(descriptor: Int32, maximumPayload: Int) {
        self.descriptor = descriptor
        assembler = FrameAssembler(maximumPayload: maximumPayload)
    }

    /// Gives every read and write from now on `seconds` in all (a whole handshake, not each
    /// read: a peer trickling one byte at a time is cut off too); `nil` lifts the limit.
    mutating func limitTime(seconds: Int?) throws {
        deadline = seconds.map { Platform.monotonicNanos() + UInt64($0) * 1_000_000_000 }
        if seconds == nil { try Platform.setIOTimeout(descriptor, milliseconds: 0) }
    }

    /// Sets the socket's timeout to what is left before the deadline.
    private func armTimeout() throws {
        guard let deadline else { return }
        let now = Platform.monotonicNanos()
        guard now < deadline else { throw MultiprocessingError(.timedOut, "the peer took too long") }
        try Platform.setIOTimeout(descriptor, milliseconds: max(Int((deadline - now) / 1_000_000), 1))
    }

    func send(_ frame: [UInt8]) throws {
        try armTimeout()
        try frame.withUnsafeBytes { raw throws in try Platform.writeAll(descriptor, raw) }
    }

    /// The next frame; `nil` when the peer closed the connection. A read that times out
    /// (``limitTime(seconds:)``) throws ``MultiprocessingError/Code/timedOut``.
    mutating func receive() throws -> Frame? {
        while true {
            if let frame = try assembler.next() { return frame }
            try armTimeout()
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { raw throws in
                    try Platform.read(descriptor, into: raw.baseAddress!, count: raw.count)
                }
            } catch let error as MultiprocessingError {
                if Platform.isTimeout(error) {
                    throw MultiprocessingError(.timedOut, "the peer sent nothing for too long")
                }
                if Platform.isPeerGone(error) { return nil }
                throw error
            }
            if n == 0 {
                if assembler.bufferedByteCount > 0 {
                    throw MultiprocessingError(
                        .malformedFrame, "the peer closed the connection in the middle of a frame")
                }
                return nil
            }
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// The next frame, which must be of `kind`.
    mutating func receive(expecting kind: Frame.Kind, _ what: String) throws -> Frame {
        guard let frame = try receive() else {
            throw MultiprocessingError(
                .authenticationFailed, "the peer closed the connection instead of sending \(what)")
        }
        guard frame.kind == kind else {
            if frame.kind == .fatal,
                let failure = try? ClusterMessage.decode(frame, { try Message.Failure(&$0, kind: .fatal) })
            {
                throw MultiprocessingError(.authenticationFailed, "the peer refused the connection: \(failure.message)")
            }
            throw MultiprocessingError(.malformedFrame, "the peer sent a \(frame.kind) frame instead of \(what)")
        }
        return frame
    }
}
