// Decoding side of the binary codec; the byte format is described in BinaryEncoder.swift.
//
// Every count and length is checked against the bytes that are left before anything is
// allocated, every read is bounds-checked, and every element or field consumes at least
// one byte, so malformed input ends in a `decodingFailed` error: never a trap, an
// endless loop or an allocation out of proportion to the input.

extension BinaryCodec {
    /// Reads exactly one value of type `T` starting at `reader`'s offset and advances past
    /// it.
    ///
    /// On failure the reader is left where it was.
    static func decode<T: Decodable>(
        _ type: T.Type,
        from reader: inout ByteReader
    ) throws(MultiprocessingError) -> T {
        do throws(MultiprocessingError) {
            if let value = try BinaryValueDecoder.readPrimitive(T.self, from: &reader) { return value }
            if let pod = T.self as? any _PODArrayCodable.Type { return try pod._podDecode(from: &reader, as: T.self) }
            let decoder = BinaryValueDecoder(reader: reader)
            defer { decoder.invalidate() }
            let value = try decoder.decodeValue(T.self, key: nil)
            reader = decoder.reader
            return value
        } catch {
            throw MultiprocessingError(
                .decodingFailed,
                "cannot decode a value of type \(T.self): \(error.message)",
                underlying: error.underlying
            )
        }
    }
}

/// Lets the generic decode path recognise `Optional` without string checks.
protocol _BinaryOptionalDecodable {
    /// Reads a presence byte and, when it is 1, the wrapped value; returns the optional as
    /// `R` (which is `Self`).
    static func _decodeWithPresence<R>(
        from decoder: BinaryValueDecoder,
        key: (any CodingKey)?,
        as type: R.Type
    ) throws(MultiprocessingError) -> R

    /// Reads a keyed field value: nil when it is empty, else the wrapped value in its
    /// single-value form. Returns the optional as `R` (which is `Self`).
    static func _decodeField<R>(
        _ field: ByteReader,
        from decoder: BinaryValueDecoder,
        key: any CodingKey,
        as type: R.Type
    ) throws(MultiprocessingError) -> R
}

extension Optional: _BinaryOptionalDecodable where Wrapped: Decodable {
    static func _decodeWithPresence<R>(
        from decoder: BinaryValueDecoder,
        key: (any CodingKey)?,
        as type: R.Type
    ) throws(MultiprocessingError) -> R {
        let value: Self
        switch try decoder.reader.readByte("the presence byte of \(Self.self)") {
        case 0: value = .none
        case 1: value = .some(try decoder.decodeValue(Wrapped.self, key: key))
        case let other:
            throw decoder.failure("invalid presence byte \(other) for \(Self.self) (expected 0 or 1)")
        }
        return _binaryIdentityCast(value, to: R.self)
    }

    static func _decodeField<R>(
        _ field: ByteReader,
        from decoder: BinaryValueDecoder,
        key: any CodingKey,
        as type: R.Type
    ) throws(MultiprocessingError) -> R {
        if field.isAtEnd { return _binaryIdentityCast(Self.none, to: R.self) }
        let wrapped = try decoder.decodeField(Wrapped.self, from: field, key: key)
        return _binaryIdentityCast(Self.some(wrapped), to: R.self)
    }
}

/// The fixed part of a ``BinaryFieldIndex``.
struct BinaryFieldIndexHeader {
    /// The bytes the offsets refer to.
    var base: UnsafeRawBufferPointer
    /// The number of fields.
    var count: Int
    /// The field to try first on the next lookup.
    var cursor: Int
}

/// Where the fields of one keyed container are: its field count, then for each field the
/// offset of its key (the value follows the key), found by one scan over the container.
///
/// Lookups try the field after the last one found first, which makes decoding in
/// encoding order (what synthesized `Codable` does) O(1) per field, and fall back to a
/// linear search.
final class BinaryFieldIndex: ManagedBuffer<BinaryFieldIndexHeader, Int> {
    /// The index's fixed part.
    typealias Header = BinaryFieldIndexHeader

    /// A field's value: where it starts in the index's base and how long it is.
    struct Value {
        /// The value's offset in the base.
        var offset: Int
        /// The value's length in bytes.
        var length: Int
    }

    /// Reads a keyed container's field count and field headers from `reader`, leaving
    /// the reader after the container.
    static func scan(_ reader: inout ByteReader) throws(MultiprocessingError) -> BinaryFieldIndex {
        let count = try reader.readLength("the field count of a keyed container", minimumElementSize: 2)
        let buffer = BinaryFieldIndex.create(minimumCapacity: count) { _ in
            Header(base: reader.base, count: 0, cursor: 0)
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

    /// Reads a varint that ``scan(_:)`` already checked.
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
        _ header: UnsafeMutablePointer<Header>,
        _ offsets: UnsafeMutablePointer<Int>
    ) -> Value? {
        let base = header.pointee.base
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
    func find(_ key: some CodingKey, advance: Bool) -> Value? {
        var name = key.stringValue
        return name.withUTF8 { utf8 in
            withUnsafeMutablePointers { header, offsets in
                let count = header.pointee.count
                let cursor = header.pointee.cursor
                if cursor < count, let value = Self.match(cursor, utf8, header, offsets) {
                    if advance { header.pointee.cursor = cursor + 1 }
                    return value
                }
                for slot in 0..<count where slot != cursor {
                    if let value = Self.match(slot, utf8, header, offsets) {
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
                keys.append(String(decoding: UnsafeRawBufferPointer(rebasing: base[offset..<(offset + length)]), as: UTF8.self))
            }
            return keys
        }
    }

    /// A reader over the bytes of `value`.
    @inline(__always)
    func reader(for value: Value) -> ByteReader {
        let base = header.base
        return ByteReader(UnsafeRawBufferPointer(rebasing: base[value.offset..<(value.offset + value.length)]))
    }
}

/// The `Decoder` behind ``BinaryCodec/decode(_:from:)``.
///
/// Unkeyed and single-value containers read in sequence from ``reader``; a keyed
/// container indexes its fields once and reads each field from a reader of its own
/// (swapped into ``reader`` while a nested value decodes). Containers that outlive the
/// top-level decode fail instead of reading freed memory.
final class BinaryValueDecoder: Decoder {
    /// The container the value being decoded has asked for, so that asking again (as
    /// class hierarchies that share one decoder do) returns the same one.
    enum Level {
        /// No container yet.
        case none
        /// A keyed container with this index.
        case keyed(BinaryFieldIndex)
        /// An unkeyed container whose count starts at this offset of ``reader``.
        case unkeyed(start: Int)
    }

    /// Where unkeyed and single-value containers read.
    @exclusivity(unchecked) var reader: ByteReader
    /// The current coding path.
    @exclusivity(unchecked) var path: [any CodingKey]
    /// How many values are being decoded inside each other.
    @exclusivity(unchecked) var depth: Int
    /// The container of the value being decoded.
    @exclusivity(unchecked) var level = Level.none
    /// False once the top-level decode has returned.
    @exclusivity(unchecked) var isValid = true
    /// The decoder this one was split from (for `superDecoder` and nested containers of a
    /// keyed field), or nil for the top-level decoder.
    var root: BinaryValueDecoder?
    /// Decoders split from this top-level decoder, invalidated with it.
    var splits: [BinaryValueDecoder] = []

    /// Creates a top-level decoder.
    init(reader: ByteReader) {
        self.reader = reader
        self.path = []
        self.depth = 0
    }

    /// Creates a decoder over one keyed field, split from `parent`.
    init(field: ByteReader, path: [any CodingKey], depth: Int, parent: BinaryValueDecoder) {
        self.reader = field
        self.path = path
        self.depth = depth
        let root = parent.root ?? parent
        self.root = root
        root.splits.append(self)
    }

    /// Makes every container of this decoding fail from now on: the bytes they point at
    /// may be gone.
    func invalidate() {
        isValid = false
        reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        level = .none
        for split in splits {
            split.invalidate()
            split.root = nil
        }
        splits = []
    }

    var codingPath: [any CodingKey] { path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// The first `count` keys of the coding path.
    func pathPrefix(_ count: Int) -> [any CodingKey] {
        count >= path.count ? path : Array(path.prefix(count))
    }

    /// Shortens the coding path to `count` keys.
    @inline(__always)
    func truncatePath(_ count: Int) {
        if path.count > count { path.removeSubrange(count...) }
    }

    /// Makes a decoding error that names the coding path.
    func failure(_ message: String, underlying: (any Error & Sendable)? = nil) -> MultiprocessingError {
        MultiprocessingError(.decodingFailed, "\(message) (at \(BinaryCodec.describe(path)))", underlying: underlying)
    }

    /// The error for a container used after the top-level decode returned.
    func staleContainer() -> MultiprocessingError {
        MultiprocessingError(.decodingFailed, "a decoding container was used after its decode had finished")
    }

    // MARK: Values

    /// Reads `T` when it is a primitive (an integer, a float, Bool or String), else
    /// returns nil without reading.
    @inline(__always)
    static func readPrimitive<T>(_ type: T.Type, from reader: inout ByteReader) throws(MultiprocessingError) -> T? {
        if T.self == String.self {
            return _binaryIdentityCast(try reader.readString(), to: T.self)
        } else if T.self == Int.self {
            return _binaryIdentityCast(try reader.read(fixed: Int.self), to: T.self)
        } else if T.self == Double.self {
            return _binaryIdentityCast(Double(bitPattern: try reader.read(fixed: UInt64.self)), to: T.self)
        } else if T.self == Bool.self {
            return _binaryIdentityCast(try readBool(from: &reader), to: T.self)
        } else if T.self == Float.self {
            return _binaryIdentityCast(Float(bitPattern: try reader.read(fixed: UInt32.self)), to: T.self)
        } else if T.self == Int64.self {
            return _binaryIdentityCast(try reader.read(fixed: Int64.self), to: T.self)
        } else if T.self == UInt8.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt8.self), to: T.self)
        } else if T.self == Int32.self {
            return _binaryIdentityCast(try reader.read(fixed: Int32.self), to: T.self)
        } else if T.self == UInt.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt.self), to: T.self)
        } else if T.self == UInt64.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt64.self), to: T.self)
        } else if T.self == UInt32.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt32.self), to: T.self)
        } else if T.self == Int8.self {
            return _binaryIdentityCast(try reader.read(fixed: Int8.self), to: T.self)
        } else if T.self == Int16.self {
            return _binaryIdentityCast(try reader.read(fixed: Int16.self), to: T.self)
        } else if T.self == UInt16.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt16.self), to: T.self)
        } else if T.self == Int128.self {
            return _binaryIdentityCast(try reader.read(fixed: Int128.self), to: T.self)
        } else if T.self == UInt128.self {
            return _binaryIdentityCast(try reader.read(fixed: UInt128.self), to: T.self)
        }
        return nil
    }

    /// Reads a Bool: one byte that must be 0 or 1.
    @inline(__always)
    static func readBool(from reader: inout ByteReader) throws(MultiprocessingError) -> Bool {
        switch try reader.readByte("a Bool") {
        case 0: return false
        case 1: return true
        case let other:
            throw MultiprocessingError(.decodingFailed, "invalid Bool byte \(other) (expected 0 or 1)")
        }
    }

    /// Reads a `T` in its single-value form at the current position of ``reader``.
    ///
    /// - Parameter key: the coding path key of the value, when it has one of its own.
    @inline(__always)
    func decodeValue<T: Decodable>(_ type: T.Type, key: (any CodingKey)?) throws(MultiprocessingError) -> T {
        if let value = try Self.readPrimitive(T.self, from: &reader) { return value }
        if let optional = T.self as? any _BinaryOptionalDecodable.Type {
            return try optional._decodeWithPresence(from: self, key: key, as: T.self)
        }
        if let pod = T.self as? any _PODArrayCodable.Type { return try pod._podDecode(from: &reader, as: T.self) }
        return try decodeNested(T.self, key: key)
    }

    /// Reads a `T` from a keyed field's bytes, all of which it must use when `T` is a
    /// primitive or a POD array.
    func decodeField<T: Decodable>(
        _ type: T.Type,
        from field: ByteReader,
        key: any CodingKey
    ) throws(MultiprocessingError) -> T {
        var field = field
        if let value = try Self.readPrimitive(T.self, from: &field) {
            guard field.isAtEnd else { throw fieldLength(T.self, key, field) }
            return value
        }
        if let optional = T.self as? any _BinaryOptionalDecodable.Type {
            return try optional._decodeField(field, from: self, key: key, as: T.self)
        }
        if let pod = T.self as? any _PODArrayCodable.Type {
            let value = try pod._podDecode(from: &field, as: T.self)
            guard field.isAtEnd else { throw fieldLength(T.self, key, field) }
            return value
        }
        let saved = reader
        reader = field
        defer { reader = saved }
        return try decodeNested(T.self, key: key)
    }

    /// The error for a field with bytes left over after its value.
    func fieldLength(_ type: Any.Type, _ key: any CodingKey, _ field: ByteReader) -> MultiprocessingError {
        failure(
            "the value for key \"\(key.stringValue)\" has \(field.remaining) bytes left over after a \(type); "
                + "the data does not match the type"
        )
    }

    /// Runs `T(from:)` with this decoder as a new value level.
    func decodeNested<T: Decodable>(_ type: T.Type, key: (any CodingKey)?) throws(MultiprocessingError) -> T {
        guard depth < BinaryCodec.maximumDepth else {
            throw failure("\(T.self) is nested more than \(BinaryCodec.maximumDepth) levels deep")
        }
        let savedLevel = level
        let savedPathCount = path.count
        let savedReader = reader
        if let key { path.append(key) }
        level = .none
        depth += 1
        defer {
            depth -= 1
            level = savedLevel
            truncatePath(savedPathCount)
        }
        do {
            let value = try T(from: self)
            if reader.offset == savedReader.offset && reader.base.baseAddress == savedReader.base.baseAddress {
                try skipEmptyValue(T.self)
            }
            return value
        } catch let error as MultiprocessingError {
            reader = savedReader
            throw error
        } catch {
            reader = savedReader
            throw failure(
                "\(T.self).init(from:) threw: \(BinaryCodec.describe(error))",
                underlying: error
            )
        }
    }

    /// Consumes the 0 byte that stands for a value that encoded nothing, after a
    /// `T(from:)` that read nothing (see the format notes in BinaryEncoder.swift).
    func skipEmptyValue<T>(_ type: T.Type) throws(MultiprocessingError) {
        let byte = try reader.readByte("the empty value of \(T.self)")
        guard byte == 0 else {
            throw failure(
                "\(T.self).init(from:) read nothing, but the data holds a value that is not empty; "
                    + "the data does not match the type"
            )
        }
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws(MultiprocessingError) -> KeyedDecodingContainer<Key> {
        guard isValid else { throw staleContainer() }
        let index: BinaryFieldIndex
        switch level {
        case .keyed(let existing):
            index = existing
        case .unkeyed:
            throw failure("a value asked for a keyed container after it had used an unkeyed container")
        case .none:
            index = try BinaryFieldIndex.scan(&reader)
            level = .keyed(index)
        }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(decoder: self, index: index, pathDepth: path.count))
    }

    func unkeyedContainer() throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
        guard isValid else { throw staleContainer() }
        switch level {
        case .keyed:
            throw failure("a value asked for an unkeyed container after it had used a keyed container")
        case .unkeyed(let start):
            reader = ByteReader(reader.base, offset: start)
        case .none:
            level = .unkeyed(start: reader.offset)
        }
        return try BinaryUnkeyedDecodingContainer(decoder: self, pathDepth: path.count)
    }

    func singleValueContainer() throws(MultiprocessingError) -> any SingleValueDecodingContainer {
        guard isValid else { throw staleContainer() }
        return BinarySingleValueDecodingContainer(decoder: self, pathDepth: path.count)
    }
}

/// Reads the fields of a keyed container through its ``BinaryFieldIndex``.
struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    /// The decoder this container belongs to.
    let decoder: BinaryValueDecoder
    /// Where the fields are.
    let index: BinaryFieldIndex
    /// The coding path length of this container.
    let pathDepth: Int

    var codingPath: [any CodingKey] { decoder.pathPrefix(pathDepth) }

    var allKeys: [Key] {
        guard decoder.isValid else { return [] }
        return index.keyStrings.compactMap { Key(stringValue: $0) }
    }

    func contains(_ key: Key) -> Bool {
        guard decoder.isValid else { return false }
        return index.find(key, advance: false) != nil
    }

    /// Returns the field named `key`, or nil when there is none.
    @inline(__always)
    private func lookup(_ key: Key) throws(MultiprocessingError) -> BinaryFieldIndex.Value? {
        guard decoder.isValid else { throw decoder.staleContainer() }
        return index.find(key, advance: true)
    }

    /// Returns a reader over the value of `key`, which must be there.
    @inline(__always)
    private func field(_ key: Key, _ type: Any.Type) throws(MultiprocessingError) -> ByteReader {
        guard let value = try lookup(key) else { throw missing(key, type) }
        return index.reader(for: value)
    }

    /// The error for a missing key.
    private func missing(_ key: Key, _ type: Any.Type) -> MultiprocessingError {
        decoder.truncatePath(pathDepth)
        let present = index.keyStrings
        let shown = present.prefix(10).map { "\"\($0)\"" }.joined(separator: ", ")
        return decoder.failure(
            "no value for key \"\(key.stringValue)\" (a \(type)) in a keyed container of \(Key.self); "
                + "it has \(present.count) key\(present.count == 1 ? "" : "s")"
                + (present.isEmpty ? "" : ": \(shown)\(present.count > 10 ? ", ..." : "")")
        )
    }

    /// Reads a fixed-width field, which must be exactly `I`'s size.
    @inline(__always)
    private func fixed<I: FixedWidthInteger>(_ key: Key, _ type: Any.Type) throws(MultiprocessingError) -> I {
        var reader = try field(key, type)
        guard reader.remaining == MemoryLayout<I>.size else { throw wrongSize(key, type, reader, MemoryLayout<I>.size) }
        return try reader.read(fixed: I.self)
    }

    /// Reads a fixed-width field that may be absent or nil.
    @inline(__always)
    private func fixedIfPresent<I: FixedWidthInteger>(_ key: Key, _ type: Any.Type) throws(MultiprocessingError) -> I? {
        guard let value = try lookup(key), value.length > 0 else { return nil }
        var reader = index.reader(for: value)
        guard reader.remaining == MemoryLayout<I>.size else { throw wrongSize(key, type, reader, MemoryLayout<I>.size) }
        return try reader.read(fixed: I.self)
    }

    /// The error for a fixed-width field of the wrong size.
    private func wrongSize(_ key: Key, _ type: Any.Type, _ reader: ByteReader, _ size: Int) -> MultiprocessingError {
        decoder.truncatePath(pathDepth)
        return decoder.failure(
            "the value for key \"\(key.stringValue)\" has \(reader.remaining) bytes, but a \(type) takes \(size)"
        )
    }

    /// Reads a Bool field.
    private func bool(_ reader: ByteReader, _ key: Key) throws(MultiprocessingError) -> Bool {
        var reader = reader
        guard reader.remaining == 1 else { throw wrongSize(key, Bool.self, reader, 1) }
        return try BinaryValueDecoder.readBool(from: &reader)
    }

    /// Reads a String field.
    private func string(_ reader: ByteReader, _ key: Key) throws(MultiprocessingError) -> String {
        var reader = reader
        let value = try reader.readString()
        guard reader.isAtEnd else { throw decoder.fieldLength(String.self, key, reader) }
        return value
    }

    func decodeNil(forKey key: Key) throws(MultiprocessingError) -> Bool {
        guard decoder.isValid else { throw decoder.staleContainer() }
        guard let value = index.find(key, advance: false) else { throw missing(key, Optional<Any>.self) }
        if value.length == 0 {
            _ = index.find(key, advance: true)
            return true
        }
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws(MultiprocessingError) -> Bool {
        try bool(try field(key, type), key)
    }

    func decode(_ type: String.Type, forKey key: Key) throws(MultiprocessingError) -> String {
        try string(try field(key, type), key)
    }

    func decode(_ type: Double.Type, forKey key: Key) throws(MultiprocessingError) -> Double {
        Double(bitPattern: try fixed(key, type))
    }

    func decode(_ type: Float.Type, forKey key: Key) throws(MultiprocessingError) -> Float {
        Float(bitPattern: try fixed(key, type))
    }

    func decode(_ type: Int.Type, forKey key: Key) throws(MultiprocessingError) -> Int { try fixed(key, type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws(MultiprocessingError) -> Int8 { try fixed(key, type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws(MultiprocessingError) -> Int16 { try fixed(key, type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws(MultiprocessingError) -> Int32 { try fixed(key, type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws(MultiprocessingError) -> Int64 { try fixed(key, type) }
    func decode(_ type: Int128.Type, forKey key: Key) throws(MultiprocessingError) -> Int128 { try fixed(key, type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws(MultiprocessingError) -> UInt { try fixed(key, type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws(MultiprocessingError) -> UInt8 { try fixed(key, type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws(MultiprocessingError) -> UInt16 { try fixed(key, type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws(MultiprocessingError) -> UInt32 { try fixed(key, type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws(MultiprocessingError) -> UInt64 { try fixed(key, type) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws(MultiprocessingError) -> UInt128 {
        try fixed(key, type)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws(MultiprocessingError) -> T {
        let reader = try field(key, type)
        decoder.truncatePath(pathDepth)
        return try decoder.decodeField(T.self, from: reader, key: key)
    }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws(MultiprocessingError) -> Bool? {
        guard let value = try lookup(key), value.length > 0 else { return nil }
        return try bool(index.reader(for: value), key)
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws(MultiprocessingError) -> String? {
        guard let value = try lookup(key), value.length > 0 else { return nil }
        return try string(index.reader(for: value), key)
    }

    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws(MultiprocessingError) -> Double? {
        try fixedIfPresent(key, type).map { Double(bitPattern: $0) }
    }

    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws(MultiprocessingError) -> Float? {
        try fixedIfPresent(key, type).map { Float(bitPattern: $0) }
    }

    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws(MultiprocessingError) -> Int? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws(MultiprocessingError) -> Int8? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws(MultiprocessingError) -> Int16? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws(MultiprocessingError) -> Int32? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws(MultiprocessingError) -> Int64? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws(MultiprocessingError) -> Int128? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws(MultiprocessingError) -> UInt? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws(MultiprocessingError) -> UInt8? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws(MultiprocessingError) -> UInt16? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws(MultiprocessingError) -> UInt32? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws(MultiprocessingError) -> UInt64? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws(MultiprocessingError) -> UInt128? {
        try fixedIfPresent(key, type)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws(MultiprocessingError) -> T? {
        guard let value = try lookup(key), value.length > 0 else { return nil }
        decoder.truncatePath(pathDepth)
        return try decoder.decodeField(T.self, from: index.reader(for: value), key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws(MultiprocessingError) -> KeyedDecodingContainer<NestedKey> {
        var reader = try field(key, KeyedDecodingContainer<NestedKey>.self)
        decoder.truncatePath(pathDepth)
        decoder.path.append(key)
        let nested = try BinaryFieldIndex.scan(&reader)
        return KeyedDecodingContainer(
            BinaryKeyedDecodingContainer<NestedKey>(decoder: decoder, index: nested, pathDepth: pathDepth + 1)
        )
    }

    func nestedUnkeyedContainer(forKey key: Key) throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
        guard decoder.isValid else { throw decoder.staleContainer() }
        return try splitDecoder(key, index.find(key, advance: true)).unkeyedContainer()
    }

    func superDecoder() throws(MultiprocessingError) -> any Decoder {
        guard decoder.isValid else { throw decoder.staleContainer() }
        return try splitDecoder(BinaryCodingKey.super, index.find(BinaryCodingKey.super, advance: true))
    }

    func superDecoder(forKey key: Key) throws(MultiprocessingError) -> any Decoder {
        guard decoder.isValid else { throw decoder.staleContainer() }
        return try splitDecoder(key, index.find(key, advance: true))
    }

    /// Makes a decoder of its own over the field `value` named `key`.
    private func splitDecoder(
        _ key: any CodingKey,
        _ value: BinaryFieldIndex.Value?
    ) throws(MultiprocessingError) -> BinaryValueDecoder {
        guard let value else {
            decoder.truncatePath(pathDepth)
            throw decoder.failure("no value for key \"\(key.stringValue)\" in a keyed container of \(Key.self)")
        }
        return BinaryValueDecoder(
            field: index.reader(for: value),
            path: decoder.pathPrefix(pathDepth) + [key],
            depth: decoder.depth,
            parent: decoder
        )
    }
}

/// Reads the elements of an unkeyed container in sequence from its decoder's reader.
struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    /// The decoder this container reads from.
    let decoder: BinaryValueDecoder
    /// The number of elements.
    let elementCount: Int
    /// The coding path length of this container.
    let pathDepth: Int
    /// The index of the next element.
    private(set) var currentIndex = 0

    /// Reads the element count at the decoder's current position.
    init(decoder: BinaryValueDecoder, pathDepth: Int) throws(MultiprocessingError) {
        self.decoder = decoder
        self.pathDepth = pathDepth
        elementCount = try decoder.reader.readLength("the element count of an unkeyed container")
    }

    var codingPath: [any CodingKey] { decoder.pathPrefix(pathDepth) }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    /// Checks that an element is left to read.
    @inline(__always)
    private func checkNext(_ type: Any.Type) throws(MultiprocessingError) {
        guard currentIndex < elementCount else {
            decoder.truncatePath(pathDepth)
            throw decoder.failure(
                "cannot decode a \(type): the unkeyed container's \(elementCount) element\(elementCount == 1 ? "" : "s") are used up"
            )
        }
    }

    /// Reads a fixed-width element.
    @inline(__always)
    private mutating func fixed<I: FixedWidthInteger>(_ type: Any.Type) throws(MultiprocessingError) -> I {
        try checkNext(type)
        let value = try decoder.reader.read(fixed: I.self)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws(MultiprocessingError) -> Bool {
        try checkNext(Optional<Any>.self)
        guard decoder.isValid else { throw decoder.staleContainer() }
        var peek = decoder.reader
        if peek.remaining > 0, try peek.readByte() == 0 {
            decoder.reader = peek
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws(MultiprocessingError) -> Bool {
        try checkNext(type)
        let value = try BinaryValueDecoder.readBool(from: &decoder.reader)
        currentIndex += 1
        return value
    }

    mutating func decode(_ type: String.Type) throws(MultiprocessingError) -> String {
        try checkNext(type)
        let value = try decoder.reader.readString()
        currentIndex += 1
        return value
    }

    mutating func decode(_ type: Double.Type) throws(MultiprocessingError) -> Double {
        Double(bitPattern: try fixed(type))
    }

    mutating func decode(_ type: Float.Type) throws(MultiprocessingError) -> Float {
        Float(bitPattern: try fixed(type))
    }

    mutating func decode(_ type: Int.Type) throws(MultiprocessingError) -> Int { try fixed(type) }
    mutating func decode(_ type: Int8.Type) throws(MultiprocessingError) -> Int8 { try fixed(type) }
    mutating func decode(_ type: Int16.Type) throws(MultiprocessingError) -> Int16 { try fixed(type) }
    mutating func decode(_ type: Int32.Type) throws(MultiprocessingError) -> Int32 { try fixed(type) }
    mutating func decode(_ type: Int64.Type) throws(MultiprocessingError) -> Int64 { try fixed(type) }
    mutating func decode(_ type: Int128.Type) throws(MultiprocessingError) -> Int128 { try fixed(type) }
    mutating func decode(_ type: UInt.Type) throws(MultiprocessingError) -> UInt { try fixed(type) }
    mutating func decode(_ type: UInt8.Type) throws(MultiprocessingError) -> UInt8 { try fixed(type) }
    mutating func decode(_ type: UInt16.Type) throws(MultiprocessingError) -> UInt16 { try fixed(type) }
    mutating func decode(_ type: UInt32.Type) throws(MultiprocessingError) -> UInt32 { try fixed(type) }
    mutating func decode(_ type: UInt64.Type) throws(MultiprocessingError) -> UInt64 { try fixed(type) }
    mutating func decode(_ type: UInt128.Type) throws(MultiprocessingError) -> UInt128 { try fixed(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws(MultiprocessingError) -> T {
        try checkNext(type)
        decoder.truncatePath(pathDepth)
        let value = try decoder.decodeValue(T.self, key: BinaryCodingKey(index: currentIndex))
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws(MultiprocessingError) -> KeyedDecodingContainer<NestedKey> {
        try checkNext(type)
        guard decoder.isValid else { throw decoder.staleContainer() }
        decoder.truncatePath(pathDepth)
        decoder.path.append(BinaryCodingKey(index: currentIndex))
        let index = try BinaryFieldIndex.scan(&decoder.reader)
        currentIndex += 1
        return KeyedDecodingContainer(
            BinaryKeyedDecodingContainer<NestedKey>(decoder: decoder, index: index, pathDepth: pathDepth + 1)
        )
    }

    mutating func nestedUnkeyedContainer() throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
        try checkNext((any UnkeyedDecodingContainer).self)
        guard decoder.isValid else { throw decoder.staleContainer() }
        decoder.truncatePath(pathDepth)
        decoder.path.append(BinaryCodingKey(index: currentIndex))
        let nested = try BinaryUnkeyedDecodingContainer(decoder: decoder, pathDepth: pathDepth + 1)
        currentIndex += 1
        return nested
    }

    mutating func superDecoder() throws(MultiprocessingError) -> any Decoder {
        try checkNext((any Decoder).self)
        guard decoder.isValid else { throw decoder.staleContainer() }
        decoder.truncatePath(pathDepth)
        decoder.path.append(BinaryCodingKey(index: currentIndex))
        decoder.level = .none
        currentIndex += 1
        return decoder
    }
}

/// Reads one value at its decoder's current position.
struct BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    /// The decoder this container reads from.
    let decoder: BinaryValueDecoder
    /// The coding path length of this container.
    let pathDepth: Int

    var codingPath: [any CodingKey] { decoder.pathPrefix(pathDepth) }

    func decodeNil() -> Bool {
        var peek = decoder.reader
        guard peek.remaining > 0, (try? peek.readByte()) == 0 else { return false }
        decoder.reader = peek
        return true
    }

    /// Reads a fixed-width value.
    @inline(__always)
    private func fixed<I: FixedWidthInteger>() throws(MultiprocessingError) -> I {
        try decoder.reader.read(fixed: I.self)
    }

    func decode(_ type: Bool.Type) throws(MultiprocessingError) -> Bool {
        try BinaryValueDecoder.readBool(from: &decoder.reader)
    }

    func decode(_ type: String.Type) throws(MultiprocessingError) -> String { try decoder.reader.readString() }
    func decode(_ type: Double.Type) throws(MultiprocessingError) -> Double { Double(bitPattern: try fixed()) }
    func decode(_ type: Float.Type) throws(MultiprocessingError) -> Float { Float(bitPattern: try fixed()) }
    func decode(_ type: Int.Type) throws(MultiprocessingError) -> Int { try fixed() }
    func decode(_ type: Int8.Type) throws(MultiprocessingError) -> Int8 { try fixed() }
    func decode(_ type: Int16.Type) throws(MultiprocessingError) -> Int16 { try fixed() }
    func decode(_ type: Int32.Type) throws(MultiprocessingError) -> Int32 { try fixed() }
    func decode(_ type: Int64.Type) throws(MultiprocessingError) -> Int64 { try fixed() }
    func decode(_ type: Int128.Type) throws(MultiprocessingError) -> Int128 { try fixed() }
    func decode(_ type: UInt.Type) throws(MultiprocessingError) -> UInt { try fixed() }
    func decode(_ type: UInt8.Type) throws(MultiprocessingError) -> UInt8 { try fixed() }
    func decode(_ type: UInt16.Type) throws(MultiprocessingError) -> UInt16 { try fixed() }
    func decode(_ type: UInt32.Type) throws(MultiprocessingError) -> UInt32 { try fixed() }
    func decode(_ type: UInt64.Type) throws(MultiprocessingError) -> UInt64 { try fixed() }
    func decode(_ type: UInt128.Type) throws(MultiprocessingError) -> UInt128 { try fixed() }

    func decode<T: Decodable>(_ type: T.Type) throws(MultiprocessingError) -> T {
        try decoder.decodeValue(T.self, key: nil)
    }
}
