// Where the fields of a keyed container are (decoding side of the binary codec, see
// BinaryDecoder.swift).

/// The fixed part of a ``BinaryFieldIndex``.
struct BinaryFieldIndexHeader {
    /// The decoder the container belongs to.
    let decoder: BinaryValueDecoder
    /// The decoder's generation when the container was made; the container is dead once
    /// the decoder's generation moves on.
    let generation: UInt64
    /// The coding path length of the container.
    let pathDepth: Int
    /// The bytes the offsets refer to.
    let base: UnsafeRawBufferPointer
    /// The number of fields.
    var count: Int
    /// The field to try first on the next lookup.
    var cursor: Int
}

/// One keyed container: where its fields are (for each field, the offset of its key; the
/// value follows the key), found by one scan over the container, plus the container's
/// decoder and coding path.
///
/// Lookups try the field after the last one found first, which makes decoding in
/// encoding order (what synthesized `Codable` does) O(1) per field, and fall back to a
/// linear search.
final class BinaryFieldIndex: ManagedBuffer<BinaryFieldIndexHeader, Int> {
    /// A field's value: where it starts in the index's base and how long it is.
    struct Value {
        /// The value's offset in the base.
        var offset: Int
        /// The value's length in bytes.
        var length: Int
    }

    /// Reads a keyed container's field count and field headers from `reader`, leaving
    /// the reader after the container.
    static func scan(
        _ reader: inout ByteReader,
        decoder: BinaryValueDecoder,
        pathDepth: Int
    ) throws(MultiprocessingError) -> BinaryFieldIndex {
        let count = try reader.readLength("the field count of a keyed container", minimumElementSize: 2)
        let base = reader.base
        let buffer = BinaryFieldIndex.create(minimumCapacity: count) { _ in
            BinaryFieldIndexHeader(
                decoder: decoder,
                generation: decoder.generation,
                pathDepth: pathDepth,
                base: base,
                count: 0,
                cursor: 0
            )
        }
        let index = unsafeDowncast(buffer, to: BinaryFieldIndex.self)
        for i in 0..<count {
            let keyOffset = reader.offset
            let keyLength = try reader.readLength("a key length")
            _ = try reader.readBytes(keyLength, "a key")
            let valueLength = try reader.readLength("a field's value length")
            _ = try reader.readBytes(valueLength, "a field's value")
            index.withUnsafeMutablePointers { header, offsets in
                (offsets + i).initialize(to: keyOffset)
                header.pointee.count = i + 1
            }
        }
        return index
    }

    /// The container's decoder, after checking that its decode is still going on.
    @inline(__always)
    func liveDecoder() throws(MultiprocessingError) -> BinaryValueDecoder {
        let decoder = header.decoder
        guard decoder.generation == header.generation else { throw BinaryValueDecoder.staleContainer() }
        return decoder
    }

    /// Whether the container's decode is still going on.
    var isLive: Bool { header.decoder.generation == header.generation }

    /// Reads a varint that ``scan(_:decoder:pathDepth:)`` already checked.
    @inline(__always)
    private static func varint(_ base: UnsafeRawBufferPointer, _ offset: inout Int) -> Int {
        var result = 0
        var shift = 0
        while true {
            let byte = base[offset]
            offset += 1
            result |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Compares field `slot`'s key with `key`; returns the field's value when they match.
    @inline(__always)
    private static func match(
        _ slot: Int,
        _ key: UnsafeBufferPointer<UInt8>,
        _ base: UnsafeRawBufferPointer,
        _ offsets: UnsafeMutablePointer<Int>
    ) -> Value? {
        var offset = offsets[slot]
        let keyLength = varint(base, &offset)
        guard keyLength == key.count else { return nil }
        for i in 0..<keyLength where base[offset + i] != key[i] { return nil }
        offset += keyLength
        let valueLength = varint(base, &offset)
        return Value(offset: offset, length: valueLength)
    }

    /// Finds the field named `key`; when `advance`, the next lookup starts after it.
    @inline(__always)
    func find(_ key: String, advance: Bool) -> Value? {
        var name = key
        return name.withUTF8 { utf8 in
            withUnsafeMutablePointers { header, offsets in
                let base = header.pointee.base
                let count = header.pointee.count
                let cursor = header.pointee.cursor
                if cursor < count, let value = Self.match(cursor, utf8, base, offsets) {
                    if advance { header.pointee.cursor = cursor + 1 }
                    return value
                }
                for slot in 0..<count where slot != cursor {
                    if let value = Self.match(slot, utf8, base, offsets) {
                        if advance { header.pointee.cursor = slot + 1 }
                        return value
                    }
                }
                return nil
            }
        }
    }

    /// The keys of all fields, in order.
    var keyStrings: [String] {
        withUnsafeMutablePointers { header, offsets in
            let base = header.pointee.base
            var keys: [String] = []
            keys.reserveCapacity(header.pointee.count)
            for slot in 0..<header.pointee.count {
                var offset = offsets[slot]
                let length = Self.varint(base, &offset)
                keys.append(
                    String(decoding: UnsafeRawBufferPointer(rebasing: base[offset..<(offset + length)]), as: UTF8.self))
            }
            return keys
        }
    }

    /// A reader over the bytes of `value`.
    @inline(__always)
    func reader(for value: Value) -> ByteReader {
        ByteReader(UnsafeRawBufferPointer(rebasing: header.base[value.offset..<(value.offset + value.length)]))
    }
}
