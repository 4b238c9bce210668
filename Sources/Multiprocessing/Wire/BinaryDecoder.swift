import CMultiprocessingShim

// Decoding side of the binary codec; the byte format is described in BinaryEncoder.swift.
//
// Every count and length is checked against the bytes that are left before anything is
// allocated, every read is bounds-checked, every element or field consumes at least one
// byte, and nesting is limited, so malformed input ends in a `decodingFailed` error:
// never a trap, an endless loop, a stack overflow or an allocation out of proportion to
// the input.

extension BinaryCodec {
    /// Reads exactly one value of type `T` starting at `reader`'s offset and advances past
    /// it.
    ///
    /// On failure the reader is left where it was.
    ///
    /// - Parameter asItems: `T` is the array of a chunk's items (or results): the array
    ///   does not count toward ``BinaryCodec/maximumDepth``, so each item may nest that deep.
    static func decode<T: Decodable>(
        _ type: T.Type,
        from reader: inout ByteReader,
        asItems: Bool = false
    ) throws(MultiprocessingError) -> T {
        do throws(MultiprocessingError) {
            if let primitive = BinaryPrimitive(T.self) { return try primitive.read(as: T.self, from: &reader) }
            let decoder = BinaryValueDecoder.take(reader: reader)
            defer { BinaryValueDecoder.recycle(decoder) }
            if asItems { decoder.depth = -1 }
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

/// Idle decoders for ``BinaryCodec/decode(_:from:)``.
let spareBinaryDecoders = BinarySpareInstances<BinaryValueDecoder>()

/// A type the generic decode paths read without its Codable conformance: `Optional`
/// (``_BinaryOptionalDecodable``) and POD arrays (``_PODArrayCodable``).
protocol _BinaryDecodingFastPath {
    /// Reads a `Self` in its single-value form and returns it as `R` (which is `Self`).
    static func _binaryDecode<R>(
        from decoder: BinaryValueDecoder,
        key: (any CodingKey)?,
        as type: R.Type
    ) throws(MultiprocessingError) -> R

    /// Reads a `Self` from all of a keyed field's bytes and returns it as `R` (which is
    /// `Self`).
    static func _binaryDecodeField<R>(
        _ field: ByteReader,
        from decoder: BinaryValueDecoder,
        key: any CodingKey,
        as type: R.Type
    ) throws(MultiprocessingError) -> R
}

/// Lets the generic decode paths recognise `Optional` without string checks.
protocol _BinaryOptionalDecodable: _BinaryDecodingFastPath {}

extension Optional: _BinaryOptionalDecodable where Wrapped: Decodable {}

extension Optional: _BinaryDecodingFastPath where Wrapped: Decodable {
    /// Reads a presence byte and, when it is 1, the wrapped value.
    static func _binaryDecode<R>(
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
        return binaryIdentityCast(value, to: R.self)
    }

    /// Reads nil for an empty field, else the wrapped value in its single-value form
    /// (which, for a `Wrapped` that is itself optional, starts with a presence byte).
    static func _binaryDecodeField<R>(
        _ field: ByteReader,
        from decoder: BinaryValueDecoder,
        key: any CodingKey,
        as type: R.Type
    ) throws(MultiprocessingError) -> R {
        if field.isAtEnd { return binaryIdentityCast(Self.none, to: R.self) }
        let saved = decoder.reader
        decoder.reader = field
        defer { decoder.reader = saved }
        let wrapped = try decoder.decodeValue(Wrapped.self, key: key)
        if case .nested = decoder.kind(of: Wrapped.self) {
            // Like any nested field value, it may leave bytes unread.
        } else if !decoder.reader.isAtEnd {
            throw decoder.fieldLength(Wrapped.self, key, decoder.reader)
        }
        return binaryIdentityCast(Self.some(wrapped), to: R.self)
    }
}

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

/// The `Decoder` behind ``BinaryCodec/decode(_:from:)``.
///
/// Unkeyed and single-value containers read in sequence from ``reader``; a keyed
/// container indexes its fields once and reads each field from a reader of its own
/// (swapped into ``reader`` while a nested value decodes). Every container remembers the
/// decoder's ``generation``, which moves on when the top-level decode returns, so a
/// container that outlives its decode fails instead of reading memory that may be gone.
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
    /// Moves on when a decode ends; containers of earlier decodes are dead.
    @exclusivity(unchecked) var generation: UInt64 = 0
    /// How this decoder handles the types it has met.
    @exclusivity(unchecked) var types = BinaryTypeCache<any _BinaryDecodingFastPath.Type>()
    /// The decoder this one was split from (for `superDecoder` and nested containers of a
    /// keyed field), or nil for a top-level decoder.
    @exclusivity(unchecked) var root: BinaryValueDecoder?
    /// Decoders split from this top-level decoder, invalidated with it.
    @exclusivity(unchecked) var splits: [BinaryValueDecoder] = []

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

    /// Returns an idle decoder reading from `reader`.
    static func take(reader: ByteReader) -> BinaryValueDecoder {
        guard let decoder = spareBinaryDecoders.take() else { return BinaryValueDecoder(reader: reader) }
        decoder.invalidate()
        decoder.reader = reader
        return decoder
    }

    /// Ends a decode and gives the decoder back for reuse.
    static func recycle(_ decoder: BinaryValueDecoder) {
        decoder.invalidate()
        guard decoder.path.capacity <= 256 else { return }
        spareBinaryDecoders.put(decoder)
    }

    /// Kills every container of the decode so far (the bytes they point at may be gone)
    /// and forgets its state, except the type cache.
    func invalidate() {
        generation &+= 1
        reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        level = .none
        path.removeAll(keepingCapacity: true)
        depth = 0
        if !splits.isEmpty {
            for split in splits {
                split.invalidate()
                split.root = nil
            }
            splits = []
        }
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
    func failure(_ message: String, underlying: (any Error)? = nil) -> MultiprocessingError {
        MultiprocessingError(.decodingFailed, "\(message) (at \(BinaryCodec.describe(path)))", underlying: underlying)
    }

    /// The error for a container used after the top-level decode returned.
    static func staleContainer() -> MultiprocessingError {
        MultiprocessingError(.decodingFailed, "a decoding container was used after its decode had finished")
    }

    /// Throws unless containers made in `generation` are still usable.
    @inline(__always)
    func check(_ generation: UInt64) throws(MultiprocessingError) {
        guard self.generation == generation else { throw Self.staleContainer() }
    }

    // MARK: Values

    /// How this decoder handles `T`.
    @inline(__always)
    func kind<T>(of type: T.Type) -> BinaryTypeKind<any _BinaryDecodingFastPath.Type> {
        types.kind(of: T.self) { $0 as? any _BinaryDecodingFastPath.Type }
    }

    /// Reads a `T` in its single-value form at the current position of ``reader``.
    ///
    /// - Parameter key: the coding path key of the value, when it has one of its own.
    @inline(__always)
    func decodeValue<T: Decodable>(_ type: T.Type, key: (any CodingKey)?) throws(MultiprocessingError) -> T {
        switch kind(of: T.self) {
        case .primitive(let primitive): return try primitive.read(as: T.self, from: &reader)
        case .fast(let fast): return try fast._binaryDecode(from: self, key: key, as: T.self)
        case .nested: return try decodeNested(T.self, key: key)
        }
    }

    /// Reads a `T` from a keyed field's bytes, all of which it must use when `T` is a
    /// primitive or a POD array.
    func decodeField<T: Decodable>(
        _ type: T.Type,
        from field: ByteReader,
        key: any CodingKey
    ) throws(MultiprocessingError) -> T {
        switch kind(of: T.self) {
        case .primitive(let primitive):
            var field = field
            let value = try primitive.read(as: T.self, from: &field)
            guard field.isAtEnd else { throw fieldLength(T.self, key, field) }
            return value
        case .fast(let fast):
            return try fast._binaryDecodeField(field, from: self, key: key, as: T.self)
        case .nested:
            let saved = reader
            reader = field
            defer { reader = saved }
            return try decodeNested(T.self, key: key)
        }
    }

    /// The error for a field with bytes left over after its value.
    func fieldLength(_ type: Any.Type, _ key: any CodingKey, _ field: ByteReader) -> MultiprocessingError {
        failure(
            "the value for key \"\(key.stringValue)\" has \(field.remaining) bytes left over after its \(type); "
                + "the data does not match the type"
        )
    }

    /// Runs `T(from:)` with this decoder as a new value level.
    func decodeNested<T: Decodable>(_ type: T.Type, key: (any CodingKey)?) throws(MultiprocessingError) -> T {
        guard depth < BinaryCodec.maximumDepth else {
            throw failure("\(T.self) is nested more than \(BinaryCodec.maximumDepth) levels deep")
        }
        if BinaryCodec.stackIsLow(atDepth: depth) { throw failure(BinaryCodec.stackMessage(T.self, depth: depth)) }
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
            throw failure("\(T.self).init(from:) threw: \(BinaryCodec.describe(error))", underlying: error)
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
        let index: BinaryFieldIndex
        switch level {
        case .keyed(let existing):
            index = existing
        case .unkeyed:
            throw failure("a value asked for a keyed container after it had used an unkeyed container")
        case .none:
            index = try BinaryFieldIndex.scan(&reader, decoder: self, pathDepth: path.count)
            level = .keyed(index)
        }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(index: index))
    }

    func unkeyedContainer() throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
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
        BinarySingleValueDecodingContainer(decoder: self, pathDepth: path.count, generation: generation)
    }
}

/// Reads the fields of a keyed container through its ``BinaryFieldIndex``, which holds
/// everything the container needs (so copying the container retains one object).
struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    /// Where the fields are, and the container's decoder.
    let index: BinaryFieldIndex

    var codingPath: [any CodingKey] { index.header.decoder.pathPrefix(index.header.pathDepth) }

    var allKeys: [Key] {
        guard index.isLive else { return [] }
        return index.keyStrings.compactMap { Key(stringValue: $0) }
    }

    func contains(_ key: Key) -> Bool {
        guard index.isLive else { return false }
        return index.find(key.stringValue, advance: false) != nil
    }

    /// Returns the field named `key`, or nil when there is none.
    @inline(__always)
    private func lookup(_ key: Key) throws(MultiprocessingError) -> BinaryFieldIndex.Value? {
        _ = try index.liveDecoder()
        return index.find(key.stringValue, advance: true)
    }

    /// Returns a reader over the value of `key`, which must be there.
    @inline(__always)
    private func field(_ key: Key, _ type: Any.Type) throws(MultiprocessingError) -> ByteReader {
        guard let value = try lookup(key) else { throw missing(key, type) }
        return index.reader(for: value)
    }

    /// Prepares the decoder's coding path for an error or a nested value of this
    /// container, and returns the decoder.
    private func decoderAtThisPath() throws(MultiprocessingError) -> BinaryValueDecoder {
        let decoder = try index.liveDecoder()
        decoder.truncatePath(index.header.pathDepth)
        return decoder
    }

    /// The error for a missing key.
    private func missing(_ key: Key, _ type: Any.Type) -> MultiprocessingError {
        let decoder = index.header.decoder
        decoder.truncatePath(index.header.pathDepth)
        let present = index.keyStrings
        let shown = present.prefix(10).map { "\"\($0)\"" }.joined(separator: ", ")
        return decoder.failure(
            "no value for key \"\(key.stringValue)\" (of type \(type)) in the keyed container of "
                + "\(String(reflecting: Key.self)); "
                + "it has \(present.count) key\(present.count == 1 ? "" : "s")"
                + (present.isEmpty ? "" : ": \(shown)\(present.count > 10 ? ", ..." : "")")
        )
    }

    /// The error for a fixed-width field of the wrong size.
    private func wrongSize(_ key: Key, _ type: Any.Type, _ reader: ByteReader, _ size: Int) -> MultiprocessingError {
        let decoder = index.header.decoder
        decoder.truncatePath(index.header.pathDepth)
        return decoder.failure(
            "the value for key \"\(key.stringValue)\" has \(reader.remaining) bytes, but \(type) takes \(size)"
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

    /// Reads a Bool field.
    private func bool(_ reader: ByteReader, _ key: Key) throws(MultiprocessingError) -> Bool {
        var reader = reader
        guard reader.remaining == 1 else { throw wrongSize(key, Bool.self, reader, 1) }
        return try BinaryPrimitive.readBool(from: &reader)
    }

    /// Reads a String field.
    private func string(_ reader: ByteReader, _ key: Key) throws(MultiprocessingError) -> String {
        var reader = reader
        let value = try reader.readString()
        guard reader.isAtEnd else { throw try decoderAtThisPath().fieldLength(String.self, key, reader) }
        return value
    }

    func decodeNil(forKey key: Key) throws(MultiprocessingError) -> Bool {
        _ = try index.liveDecoder()
        guard let value = index.find(key.stringValue, advance: false) else { throw missing(key, Optional<Any>.self) }
        if value.length == 0 {
            _ = index.find(key.stringValue, advance: true)
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
        return try decoderAtThisPath().decodeField(T.self, from: reader, key: key)
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
        return try decoderAtThisPath().decodeField(T.self, from: index.reader(for: value), key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws(MultiprocessingError) -> KeyedDecodingContainer<NestedKey> {
        var reader = try field(key, KeyedDecodingContainer<NestedKey>.self)
        let decoder = try decoderAtThisPath()
        decoder.path.append(key)
        let nested = try BinaryFieldIndex.scan(&reader, decoder: decoder, pathDepth: index.header.pathDepth + 1)
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<NestedKey>(index: nested))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
        _ = try index.liveDecoder()
        return try splitDecoder(key, index.find(key.stringValue, advance: true)).unkeyedContainer()
    }

    func superDecoder() throws(MultiprocessingError) -> any Decoder {
        _ = try index.liveDecoder()
        return try splitDecoder(BinaryCodingKey.super, index.find("super", advance: true))
    }

    func superDecoder(forKey key: Key) throws(MultiprocessingError) -> any Decoder {
        _ = try index.liveDecoder()
        return try splitDecoder(key, index.find(key.stringValue, advance: true))
    }

    /// Makes a decoder of its own over the field `value` named `key`.
    private func splitDecoder(
        _ key: any CodingKey,
        _ value: BinaryFieldIndex.Value?
    ) throws(MultiprocessingError) -> BinaryValueDecoder {
        let decoder = try decoderAtThisPath()
        guard let value else {
            throw decoder.failure(
                "no value for key \"\(key.stringValue)\" in the keyed container of \(String(reflecting: Key.self))"
            )
        }
        return BinaryValueDecoder(
            field: index.reader(for: value),
            path: decoder.path + [key],
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
    /// The decoder's generation when the container was made.
    let generation: UInt64
    /// The index of the next element.
    private(set) var currentIndex = 0

    /// Reads the element count at the decoder's current position.
    init(decoder: BinaryValueDecoder, pathDepth: Int) throws(MultiprocessingError) {
        self.decoder = decoder
        self.pathDepth = pathDepth
        self.generation = decoder.generation
        elementCount = try decoder.reader.readLength("the element count of an unkeyed container")
    }

    var codingPath: [any CodingKey] { decoder.pathPrefix(pathDepth) }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    /// Checks that the container is live and an element is left to read.
    @inline(__always)
    private func checkNext(_ type: Any.Type) throws(MultiprocessingError) {
        try decoder.check(generation)
        guard currentIndex < elementCount else { throw usedUp(type) }
    }

    /// The error for reading past the last element.
    private func usedUp(_ type: Any.Type) -> MultiprocessingError {
        decoder.truncatePath(pathDepth)
        return decoder.failure(
            "cannot decode a \(type): the unkeyed container's \(elementCount) element\(elementCount == 1 ? " is" : "s are") used up"
        )
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
        let value = try BinaryPrimitive.readBool(from: &decoder.reader)
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
        decoder.truncatePath(pathDepth)
        decoder.path.append(BinaryCodingKey(index: currentIndex))
        let index = try BinaryFieldIndex.scan(&decoder.reader, decoder: decoder, pathDepth: pathDepth + 1)
        currentIndex += 1
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<NestedKey>(index: index))
    }

    mutating func nestedUnkeyedContainer() throws(MultiprocessingError) -> any UnkeyedDecodingContainer {
        try checkNext((any UnkeyedDecodingContainer).self)
        decoder.truncatePath(pathDepth)
        decoder.path.append(BinaryCodingKey(index: currentIndex))
        let nested = try BinaryUnkeyedDecodingContainer(decoder: decoder, pathDepth: pathDepth + 1)
        currentIndex += 1
        return nested
    }

    mutating func superDecoder() throws(MultiprocessingError) -> any Decoder {
        try checkNext((any Decoder).self)
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
    /// The decoder's generation when the container was made.
    let generation: UInt64

    var codingPath: [any CodingKey] { decoder.pathPrefix(pathDepth) }

    func decodeNil() -> Bool {
        guard decoder.generation == generation else { return false }
        var peek = decoder.reader
        guard peek.remaining > 0, (try? peek.readByte()) == 0 else { return false }
        decoder.reader = peek
        return true
    }

    /// Reads a fixed-width value.
    @inline(__always)
    private func fixed<I: FixedWidthInteger>() throws(MultiprocessingError) -> I {
        try decoder.check(generation)
        return try decoder.reader.read(fixed: I.self)
    }

    func decode(_ type: Bool.Type) throws(MultiprocessingError) -> Bool {
        try decoder.check(generation)
        return try BinaryPrimitive.readBool(from: &decoder.reader)
    }

    func decode(_ type: String.Type) throws(MultiprocessingError) -> String {
        try decoder.check(generation)
        return try decoder.reader.readString()
    }

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
        try decoder.check(generation)
        return try decoder.decodeValue(T.self, key: nil)
    }
}
