/// The journal's byte format: a sequence of framed records, each
///
/// ```
/// [payload length: UInt32 LE][checksum: UInt64 LE = XXH64(payload, seed: length)][payload]
/// ```
///
/// and each payload starts with a kind byte:
///
/// - `1` header, always the first record: the UTF-8 of ``JournalRecord/magic``.
/// - `2` call: key (varint, unique in the file), ordinal (varint: the call's place among
///   the journaled calls of its run, from 0), name (string: `map`, `imap`, ...), function
///   type (string), state hash (UInt64: XXH64 of the function's encoded value), output type
///   (string), build id (varint length + bytes), item count + 1 (varint; 0 = unknown).
/// - `3` results: call key (varint), item count n (varint), layout (byte: 0 = contiguous,
///   then the first index as a varint; 1 = listed, then n varint indices, each the
///   difference from the previous one), n input hashes (UInt64 LE each), status (byte:
///   0 = the rest is the n outputs encoded as `[Output]` by the binary codec, exactly the
///   bytes the worker sent; 1 = per item, a byte 1 followed by the output, or a byte 0
///   for an item that did not succeed).
///
/// Strings are varint length + UTF-8, as in the binary codec. The checksum's seed is the
/// length, so a damaged length fails the checksum too.
enum JournalRecord: Equatable {
    case header
    case call(JournalCallInfo)
    case results(JournalResults)

    static let magic = Array("swift-multiprocessing journal 1".utf8)
    /// Length and checksum.
    static let frameHeaderSize = 12

    static let kindHeader: UInt8 = 1
    static let kindCall: UInt8 = 2
    static let kindResults: UInt8 = 3

    /// A whole framed record for `payload`.
    static func frame(_ payload: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(reservingCapacity: payload.count + frameHeaderSize)
        writer.write(fixed: UInt32(payload.count))
        writer.write(fixed: payload.withUnsafeBytes { JournalHash.hash($0, seed: UInt64(payload.count)) })
        writer.write(contentsOf: payload)
        return writer.bytes
    }

    /// The framed header record.
    static var headerFrame: [UInt8] { frame([kindHeader] + magic) }

    /// The payload of a call record.
    static func callPayload(_ info: JournalCallInfo) -> [UInt8] {
        var w = ByteWriter(reservingCapacity: 128)
        w.write(kindCall)
        w.write(varint: info.key)
        w.write(varint: info.ordinal)
        w.write(string: info.name)
        w.write(string: info.identity.functionType)
        w.write(fixed: info.identity.stateHash)
        w.write(string: info.identity.outputType)
        w.write(length: info.identity.buildID.count)
        w.write(contentsOf: info.identity.buildID)
        w.write(varint: info.itemCount.map { UInt64($0) + 1 } ?? 0)
        return w.bytes
    }

    /// The start of a results record's payload, up to and including the status byte; the
    /// outputs follow.
    static func resultsPayloadHead(
        callKey: UInt64, indices: JournalIndices, hashes: some Collection<UInt64>, status: UInt8, extra: Int
    ) -> ByteWriter {
        var w = ByteWriter(reservingCapacity: 16 + indices.count * 9 + extra)
        w.write(kindResults)
        w.write(varint: callKey)
        w.write(length: indices.count)
        switch indices {
        case .contiguous(let range):
            w.write(UInt8(0))
            w.write(length: range.lowerBound)
        case .listed(let list):
            w.write(UInt8(1))
            var previous = 0
            for index in list {
                w.write(varint: UInt64(bitPattern: Int64(index &- previous)))
                previous = index
            }
        }
        #if _endian(little)
        // Fixed little-endian words: on this byte order, their memory as it is, in one copy.
        let copied: Void? = hashes.withContiguousStorageIfAvailable { w.write(contentsOf: UnsafeRawBufferPointer($0)) }
        if copied == nil { for hash in hashes { w.write(fixed: hash) } }
        #else
        for hash in hashes { w.write(fixed: hash) }
        #endif
        w.write(status)
        return w
    }

    /// Parses one record's payload.
    /// - Throws: ``MultiprocessingError/Code/decodingFailed`` for a payload that is not a record.
    static func parse(_ payload: UnsafeRawBufferPointer, at fileOffset: Int) throws(MultiprocessingError)
        -> JournalRecord
    {
        var r = ByteReader(payload)
        let kind = try r.readByte("a record kind")
        switch kind {
        case kindHeader:
            let rest = try r.readBytes(r.remaining)
            guard rest.elementsEqual(magic) else {
                throw MultiprocessingError(.decodingFailed, "the header record is not swift-multiprocessing's")
            }
            return .header
        case kindCall:
            let key = try r.readVarint()
            let ordinal = try r.readVarint()
            let name = try r.readString()
            let functionType = try r.readString()
            let stateHash = try r.read(fixed: UInt64.self)
            let outputType = try r.readString()
            let buildID = Array(try r.readBytes(try r.readLength("a build id length")))
            let count = try r.readVarint()
            guard r.isAtEnd else { throw MultiprocessingError(.decodingFailed, "a call record is too long") }
            return .call(
                JournalCallInfo(
                    key: key, ordinal: ordinal, name: name,
                    identity: JournalIdentity(
                        functionType: functionType, stateHash: stateHash, outputType: outputType, buildID: buildID),
                    itemCount: count == 0 ? nil : Int(clamping: count - 1)))
        case kindResults:
            let key = try r.readVarint()
            let count = try r.readLength("an item count", minimumElementSize: 8)
            let layout = try r.readByte("an index layout")
            let indices: JournalIndices
            switch layout {
            case 0:
                let raw = try r.readVarint()
                guard raw <= UInt64(Int.max - count) else {
                    throw MultiprocessingError(.decodingFailed, "a results record's indices overflow")
                }
                indices = .contiguous(Int(raw)..<(Int(raw) + count))
            case 1:
                var list: [Int] = []
                list.reserveCapacity(count)
                var previous = 0
                for _ in 0..<count {
                    let (next, overflow) = previous.addingReportingOverflow(Int(Int64(bitPattern: try r.readVarint())))
                    guard !overflow, next >= 0 else {
                        throw MultiprocessingError(.decodingFailed, "a results record has a negative index")
                    }
                    list.append(next)
                    previous = next
                }
                indices = .listed(list)
            default:
                throw MultiprocessingError(.decodingFailed, "a results record has an unknown index layout \(layout)")
            }
            let hashesStart = r.offset
            _ = try r.readBytes(count * 8, "the input hashes")
            let status = try r.readByte("a results status")
            guard status <= 1 else {
                throw MultiprocessingError(.decodingFailed, "a results record has an unknown status \(status)")
            }
            return .results(
                JournalResults(
                    callKey: key, indices: indices, hashesOffset: fileOffset + hashesStart, status: status,
                    outputs: (fileOffset + r.offset)..<(fileOffset + payload.count)))
        default:
            throw MultiprocessingError(.decodingFailed, "unknown record kind \(kind)")
        }
    }
}

/// Which items a results record holds, in the call's index space.
enum JournalIndices: Equatable, Sendable {
    case contiguous(Range<Int>)
    case listed([Int])

    var count: Int {
        switch self {
        case .contiguous(let range): return range.count
        case .listed(let list): return list.count
        }
    }

    subscript(_ position: Int) -> Int {
        switch self {
        case .contiguous(let range): return range.lowerBound + position
        case .listed(let list): return list[position]
        }
    }

    /// The largest index, or -1 when empty.
    var last: Int {
        switch self {
        case .contiguous(let range): return range.upperBound - 1
        case .listed(let list): return list.max() ?? -1
        }
    }
}

/// What a call computes: results are reused only by a call with an equal identity (the
/// build compared or not, see ``ProcessPool/Options/journalReusesOtherBuilds``).
struct JournalIdentity: Equatable, Hashable, Sendable {
    /// `String(reflecting:)` of the function's type.
    var functionType: String
    /// XXH64 of the function value's binary encoding (its state).
    var stateHash: UInt64
    /// `String(reflecting:)` of the output type.
    var outputType: String
    /// The executable's build id.
    var buildID: [UInt8]
}

/// A call record.
struct JournalCallInfo: Equatable, Sendable {
    var key: UInt64
    var ordinal: UInt64
    var name: String
    var identity: JournalIdentity
    var itemCount: Int?
}

/// A results record: where its hashes and outputs lie in the file's bytes.
struct JournalResults: Equatable, Sendable {
    var callKey: UInt64
    var indices: JournalIndices
    /// Offset of the first input hash (UInt64 LE, one per item) in the file.
    var hashesOffset: Int
    var status: UInt8
    /// The outputs' bytes in the file.
    var outputs: Range<Int>
}

/// What a scan of a journal's bytes found.
struct JournalScan {
    var records: [JournalRecord] = []
    /// Bytes from the start that hold whole, valid records.
    var validLength = 0
    /// Bytes after them that were torn or corrupt (dropped).
    var droppedBytes = 0

    /// Scans `bytes`: every whole record whose checksum and layout are valid, up to the
    /// first one that is not (a torn or corrupt tail, which is reported and never read).
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when the bytes do not start
    ///   with a journal header (the file is something else: it is never truncated).
    static func scan(_ bytes: UnsafeRawBufferPointer, path: String) throws(MultiprocessingError) -> JournalScan {
        var scan = JournalScan()
        let header = JournalRecord.headerFrame
        if bytes.count < header.count {
            // Empty, or killed while writing the header: a prefix of it is an empty journal.
            guard bytes.elementsEqual(header.prefix(bytes.count)) else { throw notAJournal(path) }
            scan.droppedBytes = bytes.count
            return scan
        }
        var offset = 0
        while bytes.count - offset >= JournalRecord.frameHeaderSize {
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let checksum = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt64.self))
            let start = offset + JournalRecord.frameHeaderSize
            guard length <= bytes.count - start else { break }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
            guard JournalHash.hash(payload, seed: UInt64(length)) == checksum,
                let record = try? JournalRecord.parse(payload, at: start)
            else { break }
            if offset == 0 {
                guard record == .header else { throw notAJournal(path) }
            } else if record == .header {
                break
            }
            scan.records.append(record)
            offset = start + length
        }
        if offset == 0 { throw notAJournal(path) }
        scan.validLength = offset
        scan.droppedBytes = bytes.count - offset
        return scan
    }

    static func notAJournal(_ path: String) -> MultiprocessingError {
        MultiprocessingError(
            .invalidArgument,
            "\(path) is not a swift-multiprocessing journal (its first bytes are not a journal header); it was left untouched: name a new file or an existing journal"
        )
    }
}
