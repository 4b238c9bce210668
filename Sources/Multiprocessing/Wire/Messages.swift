/// The messages carried in frames, and their layouts. Integers are LEB128 varints unless
/// noted; "values" are ``BinaryCodec`` encodings.
///
/// ```
/// hello          buildID (length + bytes), pid (u32), host (string)
/// install        callID, functionTypeName (string), flags (varint; 1: time each chunk),
///                  function value (rest)
/// installFailed  callID, code (string), message (string)
/// task           callID, chunkID, firstIndex, count, runStart, runEnd, inputs (rest): an
///                  [Input] value when inputs travel as raw bytes, else ``ItemizedValues``
/// result         callID, chunkID, computeNanos, status u8, [start u64, end u64],
///                  failedCount (u32); start and end (the worker's monotonic clock when it
///                  began decoding the inputs and finished encoding the results) are there
///                  only when status has bit 0x80 (calls installed with flag 1). Status:
///                  0: outputs: [Output] value (rest), only for outputs sent as raw bytes
///                  1: the run's outcomes as ``ItemizedValues`` (a value, a thrown error's
///                     type and description, or a library error's code and message, per item)
///                  The body after the header is written and read by ``ResultBody`` only.
/// initialize     initializer type name (string), its value (rest); see InitializeMessage.swift
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
        /// The worker notes when it starts and ends each chunk (the pool's timeline is on).
        var timesChunks: Bool

        init(callID: UInt64, typeName: String, timesChunks: Bool = false) {
            self.callID = callID
            self.typeName = typeName
            self.timesChunks = timesChunks
        }

        init(_ reader: inout ByteReader) throws {
            callID = try reader.readVarint()
            typeName = try reader.readString()
            timesChunks = try reader.readVarint() & 1 != 0
        }

        func write(to w: inout ByteWriter) {
            w.write(varint: callID)
            w.write(string: typeName)
            w.write(varint: timesChunks ? 1 : 0)
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
        /// The status bit that says the chunk's times follow.
        static let timedFlag: UInt8 = 0x80

        /// When the worker began decoding a chunk's inputs and finished encoding its
        /// results, on the worker's monotonic clock (nanoseconds).
        struct Times: Equatable {
            var start: UInt64
            var end: UInt64
        }

        var callID: UInt64
        var chunkID: UInt64
        var computeNanos: UInt64
        var status: UInt8
        /// How many of the chunk's items failed (for progress and reports; the outcomes
        /// themselves say which).
        var failedCount: Int
        /// The chunk's times, when its call asked for them (the worker writes the end last,
        /// see ``endOffset(inFrameBeforeFailedCount:)``).
        var times: Times?

        init(
            callID: UInt64, chunkID: UInt64, computeNanos: UInt64, status: UInt8, failedCount: Int = 0,
            times: Times? = nil
        ) {
            self.callID = callID
            self.chunkID = chunkID
            self.computeNanos = computeNanos
            self.status = status
            self.failedCount = failedCount
            self.times = times
        }

        init(_ reader: inout ByteReader) throws {
            callID = try reader.readVarint()
            chunkID = try reader.readVarint()
            computeNanos = try reader.readVarint()
            let byte = try reader.readByte("a result status")
            status = byte & ~Self.timedFlag
            if byte & Self.timedFlag != 0 {
                times = Times(start: try reader.read(fixed: UInt64.self), end: try reader.read(fixed: UInt64.self))
            }
            failedCount = Int(try reader.read(fixed: UInt32.self))
            guard status == Self.allSucceeded || status == Self.perItem else {
                throw MultiprocessingError(.malformedFrame, "a result frame has an unknown status \(status)")
            }
        }

        func write(to w: inout ByteWriter) {
            w.write(varint: callID)
            w.write(varint: chunkID)
            w.write(varint: computeNanos)
            w.write(times == nil ? status : status | Self.timedFlag)
            if let times {
                w.write(fixed: times.start)
                w.write(fixed: times.end)
            }
            // Fixed width, last: a worker patches it once its items are encoded.
            w.write(fixed: UInt32(clamping: failedCount))
        }

        /// Where the end time sits in a frame whose failed count starts at `failedCountAt`:
        /// the worker writes it last, once the whole frame is encoded.
        static func endOffset(inFrameBeforeFailedCount failedCountAt: Int) -> Int { failedCountAt - 8 }
    }

    static func releaseFrame(callID: UInt64) throws -> [UInt8] {
        try Frame.encode(.release) { w in w.write(varint: callID) }
    }
}
