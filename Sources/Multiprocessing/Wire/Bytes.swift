/// Appends little-endian fixed-width values, LEB128 varints and raw bytes to a growing
/// byte array. Everything on the wire is written through this type.
struct ByteWriter {
    var bytes: [UInt8]

    init(reservingCapacity capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    @inline(__always)
    mutating func write(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// Writes a fixed-width integer in little-endian byte order.
    @inline(__always)
    mutating func write<T: FixedWidthInteger>(fixed value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes an unsigned LEB128 varint (1 byte for values below 128).
    @inline(__always)
    mutating func write(varint value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Writes a non-negative count or length as a varint.
    @inline(__always)
    mutating func write(length: Int) {
        precondition(length >= 0, "a length is never negative")
        write(varint: UInt64(length))
    }

    mutating func write(contentsOf raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    mutating func write(contentsOf other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    /// Writes a varint length followed by the string's UTF-8 bytes.
    mutating func write(string: String) {
        var s = string
        s.withUTF8 { utf8 in
            write(length: utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    /// Overwrites 4 bytes at `offset` with `value` (little-endian); used to patch a length
    /// once the payload after it is known.
    mutating func patch(fixed value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for i in 0..<4 { bytes[offset + i] = raw[i] }
        }
    }
}

/// Reads what ``ByteWriter`` wrote, with a bounds check on every read: running past the
/// end, an overlong varint or a length larger than what is left is a
/// ``MultiprocessingError/Code/decodingFailed`` error, never a crash or a huge allocation.
///
/// The reader does not own its bytes: the buffer must outlive it.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ base: UnsafeRawBufferPointer, offset: Int = 0) {
        self.base = base
        self.offset = offset
    }

    var remaining: Int { base.count - offset }
    var isAtEnd: Bool { offset == base.count }

    static func truncated(_ what: String, need: Int, have: Int) -> MultiprocessingError {
        MultiprocessingError(
            .decodingFailed,
            "the data ended early while reading \(what): \(need) bytes needed, \(have) left"
        )
    }

    @inline(__always)
    mutating func readByte(_ what: @autoclosure () -> String = "a byte") throws(MultiprocessingError) -> UInt8 {
        guard offset < base.count else { throw Self.truncated(what(), need: 1, have: 0) }
        let b = base[offset]
        offset += 1
        return b
    }

    @inline(__always)
    mutating func read<T: FixedWidthInteger>(fixed type: T.Type) throws(MultiprocessingError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw Self.truncated("\(T.self)", need: size, have: remaining) }
        let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    @inline(__always)
    mutating func readVarint() throws(MultiprocessingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try readByte("a varint")
            if shift == 63 && b > 1 {
                throw MultiprocessingError(.decodingFailed, "a varint is longer than 64 bits")
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 {
                throw MultiprocessingError(.decodingFailed, "a varint is longer than 64 bits")
            }
        }
    }

    /// Reads a varint count or length and checks it against what the data can hold:
    /// `count * minimumElementSize` must fit in the remaining bytes.
    @inline(__always)
    mutating func readLength(_ what: String, minimumElementSize: Int = 1) throws(MultiprocessingError) -> Int {
        let raw = try readVarint()
        let limit = UInt64(remaining / max(minimumElementSize, 1))
        guard raw <= limit else {
            throw MultiprocessingError(
                .decodingFailed,
                "\(what) says \(raw) but only \(remaining) bytes are left: the data is corrupt or truncated"
            )
        }
        return Int(raw)
    }

    /// Returns the next `count` bytes and advances past them.
    mutating func readBytes(_ count: Int, _ what: @autoclosure () -> String = "bytes") throws(MultiprocessingError)
        -> UnsafeRawBufferPointer
    {
        guard count >= 0, remaining >= count else { throw Self.truncated(what(), need: count, have: remaining) }
        let slice = UnsafeRawBufferPointer(rebasing: base[offset..<(offset + count)])
        offset += count
        return slice
    }

    mutating func readString() throws(MultiprocessingError) -> String {
        let length = try readLength("a string length")
        let raw = try readBytes(length, "a string")
        return String(decoding: raw, as: UTF8.self)
    }
}
