// The zero-copy path of the binary codec: arrays of plain fixed-width numbers (and SIMD
// vectors of them) are written as an element count followed by the elements' raw memory,
// and read back with a single copy.

/// A scalar or vector type whose every bit pattern is a valid value and whose memory is
/// exactly its value (no references, no padding that matters), so arrays of it can be
/// copied as raw bytes.
///
/// Only the fixed-width integers, `Float`, `Double` and SIMD vectors of those conform.
/// `Bool`, enums and optionals are deliberately left out: not every byte is a valid value
/// of theirs, and they are encoded element by element.
protocol _WirePOD {}

extension Int: _WirePOD {}
extension Int8: _WirePOD {}
extension Int16: _WirePOD {}
extension Int32: _WirePOD {}
extension Int64: _WirePOD {}
extension Int128: _WirePOD {}
extension UInt: _WirePOD {}
extension UInt8: _WirePOD {}
extension UInt16: _WirePOD {}
extension UInt32: _WirePOD {}
extension UInt64: _WirePOD {}
extension UInt128: _WirePOD {}
extension Float: _WirePOD {}
extension Double: _WirePOD {}
extension SIMD2: _WirePOD where Scalar: _WirePOD {}
extension SIMD3: _WirePOD where Scalar: _WirePOD {}
extension SIMD4: _WirePOD where Scalar: _WirePOD {}
extension SIMD8: _WirePOD where Scalar: _WirePOD {}
extension SIMD16: _WirePOD where Scalar: _WirePOD {}
extension SIMD32: _WirePOD where Scalar: _WirePOD {}
extension SIMD64: _WirePOD where Scalar: _WirePOD {}

/// A collection of ``_WirePOD`` elements that the codec writes as an element count and
/// the raw element memory.
///
/// `Array`, `ArraySlice` and `ContiguousArray` of the same element produce identical
/// bytes, so any of them decodes as any other. The generic codec paths find this
/// conformance (through the fast-path protocols it refines) with a metatype cast,
/// `T.self as? any _BinaryEncodingFastPath.Type`, which neither boxes the value nor
/// touches its elements.
protocol _PODArrayCodable: _BinaryEncodingFastPath, _BinaryDecodingFastPath {
    /// The number of bytes ``_podEncode(_:into:)`` writes for `value` (which is `Self`).
    static func _podEncodedByteCount<V>(_ value: V) -> Int

    /// Writes `value` (which is `Self`): the element count, then the raw elements.
    static func _podEncode<V>(_ value: V, into writer: inout ByteWriter)

    /// Calls `body` with the element count and raw element memory of `value` (which is
    /// `Self`): the bytes ``_podEncode(_:into:)`` writes after the count, without a copy.
    static func _podWithMemory<V, R>(_ value: V, _ body: (Int, UnsafeRawBufferPointer) -> R) -> R

    /// Reads a value written by ``_podEncode(_:into:)`` and returns it as `R` (which is
    /// `Self`).
    static func _podDecode<R>(from reader: inout ByteReader, as type: R.Type) throws(MultiprocessingError) -> R
}

extension _PODArrayCodable {
    static func _binaryEncode<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: (any CodingKey)?
    ) throws(MultiprocessingError) {
        _podEncode(value, into: &encoder.writer)
    }

    static func _binaryEncodeField<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: any CodingKey
    ) throws(MultiprocessingError) {
        encoder.writer.write(length: _podEncodedByteCount(value))
        _podEncode(value, into: &encoder.writer)
    }

    static func _binaryDecode<R>(
        from decoder: BinaryValueDecoder,
        key: (any CodingKey)?,
        as type: R.Type
    ) throws(MultiprocessingError) -> R {
        try _podDecode(from: &decoder.reader, as: R.self)
    }

    static func _binaryDecodeField<R>(
        _ field: ByteReader,
        from decoder: BinaryValueDecoder,
        key: any CodingKey,
        as type: R.Type
    ) throws(MultiprocessingError) -> R {
        var field = field
        let value = try _podDecode(from: &field, as: R.self)
        guard field.isAtEnd else { throw decoder.fieldLength(R.self, key, field) }
        return value
    }
}

extension Array: _BinaryEncodingFastPath, _BinaryDecodingFastPath where Element: _WirePOD {}
extension ArraySlice: _BinaryEncodingFastPath, _BinaryDecodingFastPath where Element: _WirePOD {}
extension ContiguousArray: _BinaryEncodingFastPath, _BinaryDecodingFastPath where Element: _WirePOD {}

/// Raw-memory encoding and decoding shared by the POD collection conformances.
enum PODArrayCoding {
    /// The bytes an encoding of `count` elements of `Element` takes.
    @inline(__always)
    static func encodedByteCount<Element: _WirePOD>(count: Int, of type: Element.Type) -> Int {
        BinaryPrimitive.varintSize(count) + count * MemoryLayout<Element>.stride
    }

    /// Writes the element count, then the elements' memory.
    @inline(__always)
    static func write<Element: _WirePOD>(
        count: Int,
        _ raw: UnsafeRawBufferPointer,
        of type: Element.Type,
        into writer: inout ByteWriter
    ) {
        assert(_isPOD(Element.self), "a _WirePOD type must be trivially copyable")
        writer.write(length: count)
        writer.write(contentsOf: raw)
    }

    /// Reads an element count and returns the raw bytes of that many elements, after
    /// checking that they are all there.
    @inline(__always)
    static func readRaw<Element: _WirePOD>(
        of type: Element.Type,
        from reader: inout ByteReader
    ) throws(MultiprocessingError) -> (count: Int, bytes: UnsafeRawBufferPointer) {
        let stride = MemoryLayout<Element>.stride
        let count = try reader.readLength("the element count of a POD array", minimumElementSize: stride)
        let bytes = try reader.readBytes(count * stride, "the elements of a POD array")
        return (count, bytes)
    }

    /// Copies `count` elements' raw bytes into uninitialised element storage.
    @inline(__always)
    static func copy<Element: _WirePOD>(
        _ bytes: UnsafeRawBufferPointer,
        into buffer: inout UnsafeMutableBufferPointer<Element>,
        count: Int
    ) {
        assert(_isPOD(Element.self), "a _WirePOD type must be trivially copyable")
        if count > 0, let destination = buffer.baseAddress, let source = bytes.baseAddress {
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// Reads a POD array.
    @inline(__always)
    static func readArray<Element: _WirePOD>(
        of type: Element.Type,
        from reader: inout ByteReader
    ) throws(MultiprocessingError) -> [Element] {
        let (count, bytes) = try readRaw(of: Element.self, from: &reader)
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            copy(bytes, into: &buffer, count: count)
            initialized = count
        }
    }
}

extension Array: _PODArrayCodable where Element: _WirePOD {
    static func _podWithMemory<V, R>(_ value: V, _ body: (Int, UnsafeRawBufferPointer) -> R) -> R {
        let array = binaryIdentityCast(value, to: Self.self)
        return array.withUnsafeBytes { body(array.count, $0) }
    }

    static func _podEncodedByteCount<V>(_ value: V) -> Int {
        PODArrayCoding.encodedByteCount(count: binaryIdentityCast(value, to: Self.self).count, of: Element.self)
    }

    static func _podEncode<V>(_ value: V, into writer: inout ByteWriter) {
        let array = binaryIdentityCast(value, to: Self.self)
        array.withUnsafeBytes { PODArrayCoding.write(count: array.count, $0, of: Element.self, into: &writer) }
    }

    static func _podDecode<R>(from reader: inout ByteReader, as type: R.Type) throws(MultiprocessingError) -> R {
        binaryIdentityCast(try PODArrayCoding.readArray(of: Element.self, from: &reader), to: R.self)
    }
}

extension ArraySlice: _PODArrayCodable where Element: _WirePOD {
    static func _podWithMemory<V, R>(_ value: V, _ body: (Int, UnsafeRawBufferPointer) -> R) -> R {
        let slice = binaryIdentityCast(value, to: Self.self)
        return slice.withUnsafeBytes { body(slice.count, $0) }
    }

    static func _podEncodedByteCount<V>(_ value: V) -> Int {
        PODArrayCoding.encodedByteCount(count: binaryIdentityCast(value, to: Self.self).count, of: Element.self)
    }

    static func _podEncode<V>(_ value: V, into writer: inout ByteWriter) {
        let slice = binaryIdentityCast(value, to: Self.self)
        slice.withUnsafeBytes { PODArrayCoding.write(count: slice.count, $0, of: Element.self, into: &writer) }
    }

    static func _podDecode<R>(from reader: inout ByteReader, as type: R.Type) throws(MultiprocessingError) -> R {
        binaryIdentityCast(ArraySlice(try PODArrayCoding.readArray(of: Element.self, from: &reader)), to: R.self)
    }
}

extension ContiguousArray: _PODArrayCodable where Element: _WirePOD {
    static func _podWithMemory<V, R>(_ value: V, _ body: (Int, UnsafeRawBufferPointer) -> R) -> R {
        let array = binaryIdentityCast(value, to: Self.self)
        return array.withUnsafeBytes { body(array.count, $0) }
    }

    static func _podEncodedByteCount<V>(_ value: V) -> Int {
        PODArrayCoding.encodedByteCount(count: binaryIdentityCast(value, to: Self.self).count, of: Element.self)
    }

    static func _podEncode<V>(_ value: V, into writer: inout ByteWriter) {
        let array = binaryIdentityCast(value, to: Self.self)
        array.withUnsafeBytes { PODArrayCoding.write(count: array.count, $0, of: Element.self, into: &writer) }
    }

    static func _podDecode<R>(from reader: inout ByteReader, as type: R.Type) throws(MultiprocessingError) -> R {
        let (count, bytes) = try PODArrayCoding.readRaw(of: Element.self, from: &reader)
        let array = ContiguousArray<Element>(unsafeUninitializedCapacity: count) { buffer, initialized in
            PODArrayCoding.copy(bytes, into: &buffer, count: count)
            initialized = count
        }
        return binaryIdentityCast(array, to: R.self)
    }
}
