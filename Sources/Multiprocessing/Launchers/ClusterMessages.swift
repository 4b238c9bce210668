/// The messages of the multi-node protocol, carried in the same frames as the local one.
///
/// ```
/// challenge      nonce (32 bytes)
/// authenticate   nonce (32 bytes), role u8 (1 host, 2 worker), workerID, mac (32 bytes)
/// authenticated  mac (32 bytes)
/// hostHello      buildID (length + bytes), pid u32, host (string), node (string),
///                workers, how the count was decided (string)
/// startWorker    workerID, slot, maximum payload, flags (1: time items), item timeout ns
/// stopWorker     workerID
/// workerExited   workerID, pid u32, termination u8 (0 exited, 1 signaled) + code u32,
///                timed out u8, chunkID, phase u8, offset, message (string)
/// ```
enum ClusterMessage {
    static let nonceSize = 32
    static let macSize = 32

    /// What an authenticated TCP connection is for.
    enum Role: UInt8, Sendable {
        /// A worker host's control connection (one per node).
        case host = 1
        /// A worker's channel, started by a host for the worker with this id.
        case worker = 2
    }

    struct Authenticate: Equatable {
        var nonce: [UInt8]
        var role: Role
        var workerID: UInt64
        var mac: [UInt8]

        func frame() throws -> [UInt8] {
            try Frame.encode(.authenticate) { w in
                w.write(contentsOf: nonce)
                w.write(role.rawValue)
                w.write(varint: workerID)
                w.write(contentsOf: mac)
            }
        }

    }

    struct HostHello: Equatable, Sendable {
        var buildID: [UInt8]
        var pid: Int32
        var host: String
        /// The Slurm node name (`SLURMD_NODENAME`), else the host name.
        var node: String
        var workers: Int
        /// How the host decided its worker count (``WorkerCount/summary``).
        var reason: String

        func frame() throws -> [UInt8] {
            try Frame.encode(.hostHello) { w in
                w.write(length: buildID.count)
                w.write(contentsOf: buildID)
                w.write(fixed: UInt32(bitPattern: pid))
                w.write(string: host)
                w.write(string: node)
                w.write(varint: UInt64(workers))
                w.write(string: reason)
            }
        }

    }

    struct StartWorker: Equatable {
        var workerID: UInt64
        var slot: Int
        var maximumPayload: Int
        var timesItems: Bool
        /// The per-item timeout the host enforces (0: none).
        var itemTimeoutNanos: UInt64

        func frame() throws -> [UInt8] {
            try Frame.encode(.startWorker) { w in
                w.write(varint: workerID)
                w.write(varint: UInt64(slot))
                w.write(varint: UInt64(maximumPayload))
                w.write(timesItems ? 1 : 0)
                w.write(varint: itemTimeoutNanos)
            }
        }

    }

    struct WorkerExited: Equatable {
        var workerID: UInt64
        var pid: Int32
        var termination: ProcessTermination
        var timedOut: Bool
        /// Where the worker was (its progress page), read by the host after it exited.
        var chunkID: UInt64
        var phase: UInt8
        var offset: Int
        /// Why the worker could not start, when it did not (empty otherwise).
        var message: String

        func frame() throws -> [UInt8] {
            try Frame.encode(.workerExited) { w in
                w.write(varint: workerID)
                w.write(fixed: UInt32(bitPattern: pid))
                switch termination.kind {
                case .exited(let status):
                    w.write(0)
                    w.write(fixed: UInt32(bitPattern: status))
                case .signaled(let signal):
                    w.write(1)
                    w.write(fixed: UInt32(bitPattern: signal))
                case .lost:
                    // A host reports how its own worker process ended; `lost` is the
                    // coordinator's verdict on a whole node, and no host ever sends it.
                    preconditionFailure("a worker host reported a worker as lost")
                }
                w.write(timedOut ? 1 : 0)
                w.write(varint: chunkID)
                w.write(phase)
                w.write(varint: UInt64(offset))
                w.write(string: message)
            }
        }

        init(
            workerID: UInt64, pid: Int32, termination: ProcessTermination, timedOut: Bool = false,
            chunkID: UInt64 = 0, phase: UInt8 = 0, offset: Int = 0, message: String = ""
        ) {
            self.workerID = workerID
            self.pid = pid
            self.termination = termination
            self.timedOut = timedOut
            self.chunkID = chunkID
            self.phase = phase
            self.offset = offset
            self.message = message
        }

        init(_ reader: inout ByteReader) throws {
            workerID = try reader.readVarint()
            pid = Int32(bitPattern: try reader.read(fixed: UInt32.self))
            let kind = try reader.readByte("a termination kind")
            let code = Int32(bitPattern: try reader.read(fixed: UInt32.self))
            switch kind {
            case 0: termination = .exited(code)
            case 1: termination = .signaled(code)
            default: throw MultiprocessingError(.malformedFrame, "unknown termination kind \(kind)")
            }
            timedOut = try reader.readByte("a flag") != 0
            chunkID = try reader.readVarint()
            phase = try reader.readByte("a phase")
            let offset = try reader.readVarint()
            guard offset < 1 << 40 else {
                throw MultiprocessingError(.malformedFrame, "an item offset is out of range")
            }
            self.offset = Int(offset)
            message = try reader.readString()
        }
    }

    /// Decodes a frame's payload with `body`; a payload with bytes left over is malformed.
    static func decode<T>(_ frame: Frame, _ body: (inout ByteReader) throws -> T) throws -> T {
        try frame.payload.withUnsafeBytes { raw throws in
            var reader = ByteReader(raw)
            let value = try body(&reader)
            guard reader.isAtEnd else {
                throw MultiprocessingError(
                    .malformedFrame, "a \(frame.kind) frame carried \(reader.remaining) bytes more than its message")
            }
            return value
        }
    }
}

extension ClusterMessage.Authenticate {
    /// Reads the message from a frame's payload.
    init(_ reader: inout ByteReader) throws {
        nonce = Array(try reader.readBytes(ClusterMessage.nonceSize, "a nonce"))
        let raw = try reader.readByte("a role")
        guard let role = ClusterMessage.Role(rawValue: raw) else {
            throw MultiprocessingError(.malformedFrame, "unknown connection role \(raw)")
        }
        self.role = role
        workerID = try reader.readVarint()
        mac = Array(try reader.readBytes(ClusterMessage.macSize, "a message authentication code"))
    }
}

extension ClusterMessage.HostHello {
    /// Reads the message from a frame's payload.
    init(_ reader: inout ByteReader) throws {
        let length = try reader.readLength("a build id length")
        buildID = Array(try reader.readBytes(length, "a build id"))
        pid = Int32(bitPattern: try reader.read(fixed: UInt32.self))
        host = try reader.readString()
        node = try reader.readString()
        let count = try reader.readVarint()
        guard count >= 1, count <= 65_536 else {
            throw MultiprocessingError(.malformedFrame, "a worker host announced \(count) workers")
        }
        workers = Int(count)
        reason = try reader.readString()
    }
}

extension ClusterMessage.StartWorker {
    /// Reads the message from a frame's payload.
    init(_ reader: inout ByteReader) throws {
        workerID = try reader.readVarint()
        let slot = try reader.readVarint()
        let maximum = try reader.readVarint()
        guard slot < 1 << 20, maximum >= 1, maximum <= UInt64(Frame.absoluteMaximumPayload) else {
            throw MultiprocessingError(.malformedFrame, "a startWorker message is out of range")
        }
        self.slot = Int(slot)
        maximumPayload = Int(maximum)
        timesItems = try reader.readByte("flags") & 1 != 0
        itemTimeoutNanos = try reader.readVarint()
    }
}
