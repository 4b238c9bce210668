/// The messages carried in frames, and their layouts. Integers are LEB128 varints unless
/// noted; "values" are ``BinaryCodec`` encodings.
///
/// ```
/// hello          buildID (length + bytes), pid (u32), host (string)
/// install        callID, functionTypeName (string), function value (rest)
/// installFailed  callID, code (string), message (string)
/// task           callID, chunkID, firstIndex, count, runStart, runEnd, inputs (rest): an
///                  [Input] value when inputs travel as raw bytes, else ``ItemizedValues``
/// result         callID, chunkID, computeNanos, status u8, failedCount (u32):
///                  0: outputs: [Output] value (rest), only for outputs sent as raw bytes
///                  1: the run's outcomes as ``ItemizedValues`` (a value, a thrown error's
///                     type and description, or a library error's code and message, per item)
/// release        callID
/// fatal          code (string), message (string)
/// ```
enum Message {
    struct Hello: Equatable {
        var buildID: [UInt8]
        var pid: Int32
        var host: String

        func frame() throws -> [UInt8] {
            try Frame.encode(.hello) { w in
                w.write(length: buildID.count)
                w.write(contentsOf: buildID)
                w.write(fixed: UInt32(bitPattern: pid))
                w.write(string: host)
            }
        }

        init(buildID: [UInt8], pid: Int32, host: String) {
            self.buildID = buildID
            self.pid = pid
            self.host = host
        }

        init(_ reader: inout ByteReader) throws {
            let length = try reader.readLength("a build id length")
            buildID = Array(try reader.readBytes(length, "a build id"))
            pid = Int32(bitPattern: try reader.read(fixed: UInt32.self))
            host = try reader.readString()
        }
    }

    /// The fixed part of an install message; the function value follows.
    struct Install {
        var callID: UInt64
        var typeName: String

        init(callID: UInt64, typeName: String) {
            self.callID = callID
            self.typeName = typeName
        }

        init(_ reader: inout ByteReader) throws {
            callID = try reader.readVarint()
            typeName = try reader.readString()
        }

        func write(to w: inout ByteWriter) {
            w.write(varint: callID)
            w.write(string: typeName)
        }
    }

    /// An error that ends one thing (an install, or the worker): a code and a message.
    struct Failure {
        var callID: UInt64
        var code: String
        var message: String

        func frame(_ kind: Frame.Kind) throws -> [UInt8] {
            try Frame.encode(kind) { w in
                if kind == .installFailed { w.write(varint: callID) }
                w.write(string: code)
                w.write(string: message)
            }
        }

        init(callID: UInt64 = 0, code: String, message: String) {
            self.callID = callID
            self.code = code
            self.message = message
        }

        init(_ reader: inout ByteReader, kind: Frame.Kind) throws {
            callID = kind == .installFailed ? try reader.readVarint() : 0
            code = try reader.readString()
            message = try reader.readString()
        }
    }

    /// The fixed part of a task message; the inputs follow.
    struct Task: Equatable {
        var callID: UInt64
        var chunkID: UInt64
        /// The input index of the frame's first input.
        var firstIndex: Int
        /// How many inputs the frame carries.
        var count: Int
        /// The inputs to run: offsets `runStart..<runEnd` of the frame's inputs (all of
        /// them, unless the chunk is what is left of one whose worker died).
        var runStart: Int
        var runEnd: Int

        init(callID: UInt64, chunkID: UInt64, firstIndex: Int, count: Int, run: Range<Int>? = nil) {
            self.callID = callID
            self.chunkID = chunkID
            self.firstIndex = firstIndex
            self.count = count
            runStart = run?.lowerBound ?? 0
            runEnd = run?.upperBound ?? count
        }

        /// The input indices of the items to run.
        var itemRange: Range<Int> { (firstIndex + runStart)..<(firstIndex + runEnd) }

        init(_ reader: inout ByteReader) throws {
            callID = try reader.readVarint()
            chunkID = try reader.readVarint()
            let first = try reader.readVarint()
            let count = try reader.readVarint()
            let start = try reader.readVarint()
            let end = try reader.readVarint()
            guard first <= UInt64(Int.max / 2), count <= UInt64(Int32.max), start <= end, end <= count else {
                throw MultiprocessingError(
                    .malformedFrame,
                    "a task frame names an impossible item range (first \(first), count \(count), run \(start)..<\(end))"
                )
            }
            firstIndex = Int(first)
            self.count = Int(count)
            runStart = Int(start)
            runEnd = Int(end)
        }

        func write(to w: inout ByteWriter) {
            w.write(varint: callID)
            w.write(varint: chunkID)
            w.write(length: firstIndex)
            w.write(length: count)
            w.write(length: runStart)
            w.write(length: runEnd)
        }
    }

    /// The fixed part of a result message; the outcomes follow.
    struct Result: Equatable {
        static let allSucceeded: UInt8 = 0
        static let perItem: UInt8 = 1

        var callID: UInt64
        var chunkID: UInt64
        var computeNanos: UInt64
        var status: UInt8
        /// How many of the chunk's items failed (for progress and reports; the outcomes
        /// themselves say which).
        var failedCount: Int

        init(callID: UInt64, chunkID: UInt64, computeNanos: UInt64, status: UInt8, failedCount: Int = 0) {
            self.callID = callID
            self.chunkID = chunkID
            self.computeNanos = computeNanos
            self.status = status
            self.failedCount = failedCount
        }

        init(_ reader: inout ByteReader) throws {
            callID = try reader.readVarint()
            chunkID = try reader.readVarint()
            computeNanos = try reader.readVarint()
            status = try reader.readByte("a result status")
            failedCount = Int(try reader.read(fixed: UInt32.self))
            guard status == Self.allSucceeded || status == Self.perItem else {
                throw MultiprocessingError(.malformedFrame, "a result frame has an unknown status \(status)")
            }
        }

        func write(to w: inout ByteWriter) {
            w.write(varint: callID)
            w.write(varint: chunkID)
            w.write(varint: computeNanos)
            w.write(status)
            // Fixed width, last: a worker patches it once its items are encoded.
            w.write(fixed: UInt32(clamping: failedCount))
        }
    }

    static func releaseFrame(callID: UInt64) throws -> [UInt8] {
        try Frame.encode(.release) { w in w.write(varint: callID) }
    }
}
