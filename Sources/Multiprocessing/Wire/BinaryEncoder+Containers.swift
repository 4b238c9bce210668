// The containers of the binary encoder (BinaryEncoder.swift): keyed, unkeyed and
// single value, the encoder `superEncoder()` returns, and the fused writes of keyed fields.

extension ByteWriter {
    /// The largest key plus value that ``appendField(key:string:)`` assembles on the stack.
    fileprivate static let fusedFieldLimit = 256

    /// Appends a keyed field holding a fixed-width value (key length, key, value length,
    /// value) with a single append.
    @inline(__always)
    fileprivate mutating func appendField<I: FixedWidthInteger>(key: String, fixed value: I) {
        var key = key
        key.withUTF8 { utf8 in
            let size = MemoryLayout<I>.size
            let total = utf8.count + 2 + size
            guard utf8.count < 0x80, total <= Self.fusedFieldLimit else {
                write(length: utf8.count)
                write(contentsOf: UnsafeRawBufferPointer(utf8))
                write(UInt8(size))
                write(fixed: value)
                return
            }
            withUnsafeTemporaryAllocation(byteCount: total, alignment: 1) { buffer in
                buffer[0] = UInt8(truncatingIfNeeded: utf8.count)
                UnsafeMutableRawBufferPointer(rebasing: buffer[1..<(1 + utf8.count)]).copyMemory(
                    from: UnsafeRawBufferPointer(utf8)
                )
                buffer[1 + utf8.count] = UInt8(truncatingIfNeeded: size)
                buffer.storeBytes(of: value.littleEndian, toByteOffset: 2 + utf8.count, as: I.self)
                write(contentsOf: UnsafeRawBufferPointer(buffer))
            }
        }
    }

    /// Appends a keyed field holding a string (key length, key, value length, string
    /// length, UTF-8), with a single append when it is short.
    @inline(__always)
    fileprivate mutating func appendField(key: String, string value: String) {
        var key = key
        var value = value
        key.withUTF8 { keyUTF8 in
            value.withUTF8 { utf8 in
                let valueLength = BinaryPrimitive.varintSize(utf8.count) + utf8.count
                let total = 1 + keyUTF8.count + BinaryPrimitive.varintSize(valueLength) + valueLength
                guard keyUTF8.count < 0x80, total <= Self.fusedFieldLimit else {
                    write(length: keyUTF8.count)
                    write(contentsOf: UnsafeRawBufferPointer(keyUTF8))
                    write(length: valueLength)
                    write(length: utf8.count)
                    write(contentsOf: UnsafeRawBufferPointer(utf8))
                    return
                }
                withUnsafeTemporaryAllocation(byteCount: total, alignment: 1) { buffer in
                    var offset = 0
                    func put(varint: Int) {
                        var rest = UInt(varint)
                        while rest >= 0x80 {
                            buffer[offset] = UInt8(truncatingIfNeeded: rest) | 0x80
                            offset += 1
                            rest >>= 7
                        }
                        buffer[offset] = UInt8(rest)
                        offset += 1
                    }
                    func put(_ bytes: UnsafeBufferPointer<UInt8>) {
                        UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + bytes.count)]).copyMemory(
                            from: UnsafeRawBufferPointer(bytes)
                        )
                        offset += bytes.count
                    }
                    put(varint: keyUTF8.count)
                    put(keyUTF8)
                    put(varint: valueLength)
                    put(varint: utf8.count)
                    put(utf8)
                    write(contentsOf: UnsafeRawBufferPointer(buffer))
                }
            }
        }
    }
}

/// The encoder `superEncoder()` returns: its containers live above its `superValue`
/// frame.
struct BinarySuperEncoder: Encoder {
    /// The encoder that owns the bytes.
    let encoder: BinaryValueEncoder
    /// The `superValue` frame this encoder writes into.
    let frame: BinaryValueEncoder.FrameHandle
    /// The coding path length of this encoder's value.
    let pathDepth: Int

    var codingPath: [any CodingKey] { encoder.pathPrefix(pathDepth) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let handle = encoder.openContainer(.keyed, level: frame.index + 1, owner: frame)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<Key>(encoder: encoder, frame: handle, pathDepth: pathDepth)
        )
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let handle = encoder.openContainer(.unkeyed, level: frame.index + 1, owner: frame)
        return BinaryUnkeyedEncodingContainer(encoder: encoder, frame: handle, pathDepth: pathDepth)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        let handle = encoder.openContainer(.singleValue, level: frame.index + 1, owner: frame)
        return BinarySingleValueEncodingContainer(encoder: encoder, frame: handle, pathDepth: pathDepth)
    }
}

/// A keyed container: a field count, then key, value length and value per field.
struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    /// The encoder that owns the bytes.
    let encoder: BinaryValueEncoder
    /// This container's frame.
    let frame: BinaryValueEncoder.FrameHandle
    /// The coding path length of this container.
    let pathDepth: Int

    var codingPath: [any CodingKey] { encoder.pathPrefix(pathDepth) }

    /// Writes a fixed-width field.
    @inline(__always)
    private func field<I: FixedWidthInteger>(_ value: I, _ key: Key) throws(MultiprocessingError) {
        try encoder.beginField(frame)
        encoder.writer.appendField(key: key.stringValue, fixed: value)
    }

    mutating func encodeNil(forKey key: Key) throws(MultiprocessingError) {
        try encoder.beginField(frame)
        encoder.writer.write(string: key.stringValue)
        encoder.writer.write(0)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws(MultiprocessingError) {
        try field(value ? 1 as UInt8 : 0, key)
    }

    mutating func encode(_ value: String, forKey key: Key) throws(MultiprocessingError) {
        try encoder.beginField(frame)
        encoder.writer.appendField(key: key.stringValue, string: value)
    }

    mutating func encode(_ value: Double, forKey key: Key) throws(MultiprocessingError) {
        try field(value.bitPattern, key)
    }

    mutating func encode(_ value: Float, forKey key: Key) throws(MultiprocessingError) {
        try field(value.bitPattern, key)
    }

    mutating func encode(_ value: Int, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: Int128, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws(MultiprocessingError) { try field(value, key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws(MultiprocessingError) {
        try encoder.beginField(frame)
        encoder.writer.write(string: key.stringValue)
        try encoder.encodeField(value, key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let handle = encoder.openNested(.keyed, in: frame, key: key, keyed: true, parentPathDepth: pathDepth)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
        )
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let handle = encoder.openNested(.unkeyed, in: frame, key: key, keyed: true, parentPathDepth: pathDepth)
        return BinaryUnkeyedEncodingContainer(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
    }

    mutating func superEncoder() -> any Encoder {
        let handle = encoder.openNested(
            .superValue,
            in: frame,
            key: BinaryCodingKey.super,
            keyed: true,
            parentPathDepth: pathDepth
        )
        return BinarySuperEncoder(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let handle = encoder.openNested(.superValue, in: frame, key: key, keyed: true, parentPathDepth: pathDepth)
        return BinarySuperEncoder(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
    }
}

/// An unkeyed container: an element count, then the elements back to back.
struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    /// The encoder that owns the bytes.
    let encoder: BinaryValueEncoder
    /// This container's frame.
    let frame: BinaryValueEncoder.FrameHandle
    /// The coding path length of this container.
    let pathDepth: Int

    var codingPath: [any CodingKey] { encoder.pathPrefix(pathDepth) }

    var count: Int {
        guard frame.index < encoder.frames.count, encoder.frames[frame.index].id == frame.id else { return 0 }
        return encoder.frames[frame.index].count
    }

    /// Writes a fixed-width element.
    @inline(__always)
    private func element<I: FixedWidthInteger>(_ value: I) throws(MultiprocessingError) {
        _ = try encoder.beginElement(frame)
        encoder.writer.write(fixed: value)
    }

    mutating func encodeNil() throws(MultiprocessingError) {
        _ = try encoder.beginElement(frame)
        encoder.writer.write(0)
    }

    mutating func encode(_ value: Bool) throws(MultiprocessingError) {
        _ = try encoder.beginElement(frame)
        encoder.writer.write(value ? 1 : 0)
    }

    mutating func encode(_ value: String) throws(MultiprocessingError) {
        _ = try encoder.beginElement(frame)
        encoder.writer.write(string: value)
    }

    mutating func encode(_ value: Double) throws(MultiprocessingError) { try element(value.bitPattern) }
    mutating func encode(_ value: Float) throws(MultiprocessingError) { try element(value.bitPattern) }
    mutating func encode(_ value: Int) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: Int8) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: Int16) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: Int32) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: Int64) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: Int128) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt8) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt16) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt32) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt64) throws(MultiprocessingError) { try element(value) }
    mutating func encode(_ value: UInt128) throws(MultiprocessingError) { try element(value) }

    mutating func encode<T: Encodable>(_ value: T) throws(MultiprocessingError) {
        let index = try encoder.beginElement(frame)
        try encoder.encodeValue(value, key: BinaryCodingKey(index: index))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let handle = encoder.openNested(
            .keyed,
            in: frame,
            key: BinaryCodingKey(index: count),
            keyed: false,
            parentPathDepth: pathDepth
        )
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
        )
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let handle = encoder.openNested(
            .unkeyed,
            in: frame,
            key: BinaryCodingKey(index: count),
            keyed: false,
            parentPathDepth: pathDepth
        )
        return BinaryUnkeyedEncodingContainer(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
    }

    mutating func superEncoder() -> any Encoder {
        let handle = encoder.openNested(
            .superValue,
            in: frame,
            key: BinaryCodingKey(index: count),
            keyed: false,
            parentPathDepth: pathDepth
        )
        return BinarySuperEncoder(encoder: encoder, frame: handle, pathDepth: pathDepth + 1)
    }
}

/// A single-value container: the value itself, nothing around it.
struct BinarySingleValueEncodingContainer: SingleValueEncodingContainer {
    /// The encoder that owns the bytes.
    let encoder: BinaryValueEncoder
    /// This container's frame.
    let frame: BinaryValueEncoder.FrameHandle
    /// The coding path length of this container.
    let pathDepth: Int

    var codingPath: [any CodingKey] { encoder.pathPrefix(pathDepth) }

    /// Writes a fixed-width value.
    @inline(__always)
    private func single<I: FixedWidthInteger>(_ value: I) throws(MultiprocessingError) {
        try encoder.beginSingle(frame)
        encoder.writer.write(fixed: value)
    }

    mutating func encodeNil() throws(MultiprocessingError) {
        try encoder.beginSingle(frame)
        encoder.writer.write(0)
    }

    mutating func encode(_ value: Bool) throws(MultiprocessingError) {
        try encoder.beginSingle(frame)
        encoder.writer.write(value ? 1 : 0)
    }

    mutating func encode(_ value: String) throws(MultiprocessingError) {
        try encoder.beginSingle(frame)
        encoder.writer.write(string: value)
    }

    mutating func encode(_ value: Double) throws(MultiprocessingError) { try single(value.bitPattern) }
    mutating func encode(_ value: Float) throws(MultiprocessingError) { try single(value.bitPattern) }
    mutating func encode(_ value: Int) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: Int8) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: Int16) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: Int32) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: Int64) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: Int128) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt8) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt16) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt32) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt64) throws(MultiprocessingError) { try single(value) }
    mutating func encode(_ value: UInt128) throws(MultiprocessingError) { try single(value) }

    mutating func encode<T: Encodable>(_ value: T) throws(MultiprocessingError) {
        try encoder.beginSingle(frame)
        try encoder.encodeValue(value, key: nil)
    }
}
