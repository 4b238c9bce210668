// The containers of the binary decoder (BinaryDecoder.swift): keyed, unkeyed and single
// value.

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
