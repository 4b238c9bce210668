// Decoding side of the binary codec; the byte format is described in BinaryCodec.swift,
// the containers are in BinaryDecoder+Containers.swift, the keyed index in BinaryFieldIndex.swift.
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
