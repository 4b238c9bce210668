// Encoding side of the binary codec; the byte format is described in BinaryCodec.swift,
// the containers are in BinaryEncoder+Containers.swift.

extension BinaryCodec {
    /// Appends the encoding of `value` to `writer`.
    ///
    /// - Parameter asItems: `value` is the array of a chunk's items (or results): the
    ///   array does not count toward ``maximumDepth``, so each item may nest that deep.
    ///
    /// On failure the writer is left as it was before the call.
    static func encode<T: Encodable>(
        _ value: T,
        into writer: inout ByteWriter,
        asItems: Bool = false
    ) throws(MultiprocessingError) {
        if let primitive = BinaryPrimitive(T.self) {
            primitive.write(value, lengthPrefixed: false, into: &writer)
            return
        }
        let encoder = BinaryValueEncoder.take()
        defer { BinaryValueEncoder.recycle(encoder) }
        if asItems { encoder.depth = -1 }
        let start = writer.count
        swap(&writer, &encoder.writer)
        do throws(MultiprocessingError) {
            try encoder.encodeValue(value, key: nil)
            try encoder.closeFrames(downTo: 0)
            if let failure = encoder.failure { throw failure }
        } catch {
            swap(&writer, &encoder.writer)
            writer.bytes.removeSubrange(start...)
            throw MultiprocessingError(
                .encodingFailed,
                "cannot encode a value of type \(T.self): \(error.message)",
                underlying: error.underlying
            )
        }
        swap(&writer, &encoder.writer)
    }

    /// Appends the encoding of the elements of `slice` to `writer`: the same bytes as
    /// encoding `Array(slice)`, so the result decodes as `[Element]`. (`ArraySlice` is not
    /// `Codable` itself.) A slice of ``_WirePOD`` elements is one raw copy.
    ///
    /// - Parameter asItems: as for ``encode(_:into:asItems:)-(T,_,_)``.
    ///
    /// On failure the writer is left as it was before the call.
    static func encode<Element: Encodable>(
        _ slice: ArraySlice<Element>,
        into writer: inout ByteWriter,
        asItems: Bool = false
    ) throws(MultiprocessingError) {
        if let pod = ArraySlice<Element>.self as? any _PODArrayCodable.Type {
            pod._podEncode(slice, into: &writer)
            return
        }
        try encode(SliceElements(slice: slice), into: &writer, asItems: asItems)
    }

    /// Encodes a slice's elements exactly as `Array.encode(to:)` encodes an array's.
    private struct SliceElements<Element: Encodable>: Encodable {
        /// The elements.
        let slice: ArraySlice<Element>

        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            for element in slice { try container.encode(element) }
        }
    }
}

/// Idle encoders for ``BinaryCodec/encode(_:into:)``.
let spareBinaryEncoders = BinarySpareInstances<BinaryValueEncoder>()

/// A type the generic encode paths write without its Codable conformance: `Optional`
/// (``_BinaryOptionalEncodable``) and POD arrays (``_PODArrayCodable``).
protocol _BinaryEncodingFastPath {
    /// Writes `value` (which is `Self`) in its single-value form.
    static func _binaryEncode<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: (any CodingKey)?
    ) throws(MultiprocessingError)

    /// Writes `value` (which is `Self`) as a keyed field value, its length included.
    static func _binaryEncodeField<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: any CodingKey
    ) throws(MultiprocessingError)
}

/// Lets the generic encode paths recognise `Optional` without string checks: a presence
/// byte and the wrapped value, or (as a keyed field) an empty value for nil.
protocol _BinaryOptionalEncodable: _BinaryEncodingFastPath {}

extension Optional: _BinaryOptionalEncodable where Wrapped: Encodable {}

extension Optional: _BinaryEncodingFastPath where Wrapped: Encodable {
    static func _binaryEncode<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: (any CodingKey)?
    ) throws(MultiprocessingError) {
        switch binaryIdentityCast(value, to: Self.self) {
        case .none:
            encoder.writer.write(0)
        case .some(let wrapped):
            encoder.writer.write(1)
            try encoder.encodeValue(wrapped, key: key)
        }
    }

    static func _binaryEncodeField<V>(
        _ value: V,
        to encoder: BinaryValueEncoder,
        key: any CodingKey
    ) throws(MultiprocessingError) {
        switch binaryIdentityCast(value, to: Self.self) {
        case .none:
            encoder.writer.write(0)
        case .some(let wrapped):
            let lengthOffset = encoder.writer.count
            encoder.writer.write(0)
            try encoder.encodeValue(wrapped, key: key)
            encoder.patchLength(encoder.writer.count - lengthOffset - 1, at: lengthOffset)
        }
    }
}

/// The `Encoder` behind ``BinaryCodec/encode(_:into:)``: it streams everything straight
/// into one ``ByteWriter``.
///
/// Containers are tracked on a stack of frames. A keyed or unkeyed container writes a
/// one-byte count placeholder when it opens and patches it when it closes; a container
/// closes when its value finishes or when a container below it on the stack writes
/// again. Writing to a closed container is an error (``failure`` remembers the first
/// error, so a caller that swallows it still gets a failed encode).
final class BinaryValueEncoder: Encoder {
    /// One open container (or `superEncoder` value) on the frame stack.
    struct Frame {
        /// What the frame holds.
        enum Kind: UInt8 {
            case keyed, unkeyed, singleValue, superValue
        }
        /// What the frame holds.
        var kind: Kind
        /// Tells a live frame from an earlier one at the same stack index.
        var id: UInt32
        /// Where the count placeholder is, or -1 when the frame has no count.
        var countOffset: Int
        /// The number of fields or elements (or values, for a single-value container).
        var count: Int
        /// Where the value length placeholder to patch on close is, or -1.
        var lengthOffset: Int
        /// Where the frame's bytes start.
        var start: Int
        /// The coding path length to go back to when the frame closes.
        var pathDepth: Int
    }

    /// Names a frame for a container: its stack index and id.
    struct FrameHandle {
        /// The frame's index in ``frames``.
        var index: Int
        /// The frame's id; 0 names no frame (a container that failed to open).
        var id: UInt32

        /// A handle that matches no frame.
        static let dead = FrameHandle(index: 0, id: 0)
    }

    /// Where the bytes go.
    @exclusivity(unchecked) var writer = ByteWriter(reservingCapacity: 0)
    /// The open containers, outermost first.
    @exclusivity(unchecked) var frames: [Frame] = []
    /// The current coding path.
    @exclusivity(unchecked) var path: [any CodingKey] = []
    /// The frame index at which the value being encoded puts its container.
    @exclusivity(unchecked) var levelBase = 0
    /// How many values are being encoded inside each other.
    @exclusivity(unchecked) var depth = 0
    /// The last frame id handed out.
    @exclusivity(unchecked) var lastID: UInt32 = 0
    /// How this encoder handles the types it has met.
    @exclusivity(unchecked) var types = BinaryTypeCache<any _BinaryEncodingFastPath.Type>()
    /// The first error; the encode fails with it even when Codable code caught it.
    @exclusivity(unchecked) var failure: MultiprocessingError?

    var codingPath: [any CodingKey] { path }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Returns an idle encoder, ready to use.
    static func take() -> BinaryValueEncoder {
        guard let encoder = spareBinaryEncoders.take() else { return BinaryValueEncoder() }
        encoder.reset()
        return encoder
    }

    /// Gives an encoder back for reuse once its encode is over.
    static func recycle(_ encoder: BinaryValueEncoder) {
        encoder.reset()
        guard encoder.frames.capacity <= 256, encoder.path.capacity <= 256 else { return }
        spareBinaryEncoders.put(encoder)
    }

    /// Forgets everything about the last encode except the type cache. Containers of an
    /// earlier encode stay dead: frame ids keep counting up.
    func reset() {
        writer = ByteWriter(reservingCapacity: 0)
        frames.removeAll(keepingCapacity: true)
        path.removeAll(keepingCapacity: true)
        levelBase = 0
        depth = 0
        failure = nil
    }

    /// The first `count` keys of the coding path.
    func pathPrefix(_ count: Int) -> [any CodingKey] {
        count >= path.count ? path : Array(path.prefix(count))
    }

    /// Makes an encoding error that names the coding path, and remembers it.
    func fail(_ message: String, underlying: (any Error)? = nil) -> MultiprocessingError {
        let error = MultiprocessingError(
            .encodingFailed,
            "\(message) (at \(BinaryCodec.describe(path)))",
            underlying: underlying
        )
        if failure == nil { failure = error }
        return error
    }

    // MARK: Values

    /// How this encoder handles `T`.
    @inline(__always)
    func kind<T>(of type: T.Type) -> BinaryTypeKind<any _BinaryEncodingFastPath.Type> {
        types.kind(of: T.self) { $0 as? any _BinaryEncodingFastPath.Type }
    }

    /// Writes `value` in its single-value form at the current position.
    ///
    /// - Parameter key: the coding path key of the value, when it has one of its own.
    @inline(__always)
    func encodeValue<T: Encodable>(_ value: T, key: (any CodingKey)?) throws(MultiprocessingError) {
        switch kind(of: T.self) {
        case .primitive(let primitive): primitive.write(value, lengthPrefixed: false, into: &writer)
        case .fast(let fast): try fast._binaryEncode(value, to: self, key: key)
        case .nested: try encodeNested(value, key: key)
        }
    }

    /// Writes `value` as a keyed field value: its byte length, then its bytes.
    @inline(__always)
    func encodeField<T: Encodable>(_ value: T, key: any CodingKey) throws(MultiprocessingError) {
        switch kind(of: T.self) {
        case .primitive(let primitive):
            primitive.write(value, lengthPrefixed: true, into: &writer)
        case .fast(let fast):
            try fast._binaryEncodeField(value, to: self, key: key)
        case .nested:
            let lengthOffset = writer.count
            writer.write(0)
            try encodeNested(value, key: key)
            patchLength(writer.count - lengthOffset - 1, at: lengthOffset)
        }
    }

    /// Runs `value.encode(to:)` with this encoder as a new value level.
    func encodeNested<T: Encodable>(_ value: T, key: (any CodingKey)?) throws(MultiprocessingError) {
        guard depth < BinaryCodec.maximumDepth else {
            throw fail(
                "\(T.self) is nested more than \(BinaryCodec.maximumDepth) levels deep (or the object graph has a cycle)"
            )
        }
        if BinaryCodec.stackIsLow(atDepth: depth) { throw fail(BinaryCodec.stackMessage(T.self, depth: depth)) }
        let savedBase = levelBase
        let savedPathCount = path.count
        if let key { path.append(key) }
        levelBase = frames.count
        depth += 1
        let start = writer.count
        do {
            try value.encode(to: self)
        } catch let error as MultiprocessingError {
            if failure == nil { failure = error }
            throw error
        } catch {
            throw fail("\(T.self).encode(to:) threw: \(BinaryCodec.describe(error))", underlying: error)
        }
        try closeFrames(downTo: levelBase)
        // A value that wrote nothing (no container, or an empty single-value one) gets one
        // 0 byte, which the decoder consumes when the value's `init(from:)` reads nothing.
        // An empty struct's keyed container, whose synthesized `init(from:)` asks for no
        // container, already wrote that byte: its field count.
        if writer.count == start { writer.write(0) }
        depth -= 1
        levelBase = savedBase
        if path.count > savedPathCount { path.removeSubrange(savedPathCount...) }
    }

    // MARK: Frames

    /// Overwrites the one-byte placeholder at `offset` with the varint `value`, growing it
    /// in place when the value needs more than one byte.
    @inline(__always)
    func patchLength(_ value: Int, at offset: Int) {
        if value < 0x80 {
            writer.bytes[offset] = UInt8(truncatingIfNeeded: value)
        } else {
            patchLongLength(value, at: offset)
        }
    }

    /// The slow part of ``patchLength(_:at:)``: a varint of two or more bytes.
    func patchLongLength(_ value: Int, at offset: Int) {
        var varint = ByteWriter(reservingCapacity: 10)
        varint.write(length: value)
        writer.bytes.replaceSubrange(offset..<(offset + 1), with: varint.bytes)
    }

    /// Checks that the frame `handle` names is open and closes every frame above it, so
    /// that its container may write.
    @inline(__always)
    func prepare(_ handle: FrameHandle) throws(MultiprocessingError) {
        let top = frames.count - 1
        if top == handle.index && frames[top].id == handle.id { return }
        try prepareSlow(handle)
    }

    /// The slow part of ``prepare(_:)``: nested containers to close, or a stale handle.
    func prepareSlow(_ handle: FrameHandle) throws(MultiprocessingError) {
        guard handle.index < frames.count, frames[handle.index].id == handle.id else {
            throw fail(
                "a container was used after a later sibling container was written or after its value was finished; "
                    + "the binary codec writes containers strictly in order"
            )
        }
        try closeFrames(downTo: handle.index + 1)
    }

    /// Closes frames from the top until `count` remain, patching their counts and lengths.
    func closeFrames(downTo count: Int) throws(MultiprocessingError) {
        while frames.count > count {
            let frame = frames.removeLast()
            if frame.countOffset >= 0 { patchLength(frame.count, at: frame.countOffset) }
            if frame.lengthOffset >= 0 {
                patchLength(writer.count - frame.lengthOffset - 1, at: frame.lengthOffset)
            } else if frame.kind == .superValue && writer.count == frame.start {
                throw fail("a super encoder in an unkeyed container encoded nothing")
            }
            if path.count > frame.pathDepth { path.removeSubrange(frame.pathDepth...) }
        }
    }

    /// Pushes a new frame at the current end of the bytes.
    @inline(__always)
    func pushFrame(_ kind: Frame.Kind, lengthOffset: Int, pathDepth: Int) -> FrameHandle {
        lastID &+= 1
        if lastID == 0 { lastID = 1 }
        let hasCount = kind == .keyed || kind == .unkeyed
        frames.append(
            Frame(
                kind: kind,
                id: lastID,
                countOffset: hasCount ? writer.count : -1,
                count: 0,
                lengthOffset: lengthOffset,
                start: writer.count,
                pathDepth: pathDepth
            )
        )
        if hasCount { writer.write(0) }
        return FrameHandle(index: frames.count - 1, id: lastID)
    }

    /// Returns the container of kind `kind` for the value whose container sits at frame
    /// index `level`, opening it when the value has none yet.
    ///
    /// - Parameter owner: the `superValue` frame of a super encoder, which must be open.
    func openContainer(_ kind: Frame.Kind, level: Int, owner: FrameHandle?) -> FrameHandle {
        if let owner {
            guard owner.index < frames.count, frames[owner.index].id == owner.id else {
                _ = fail("a super encoder was used after its container wrote again")
                return .dead
            }
        }
        if frames.count > level {
            do {
                try closeFrames(downTo: level + 1)
            } catch {
                return .dead
            }
            if frames[level].kind == kind { return FrameHandle(index: level, id: frames[level].id) }
            _ = fail("a value asked for a \(kind) container after it had used a \(frames[level].kind) container")
            return .dead
        }
        guard frames.count == level else {
            _ = fail("an encoder was used after its value was finished")
            return .dead
        }
        return pushFrame(kind, lengthOffset: -1, pathDepth: path.count)
    }

    /// Opens a container (or a super encoder's value) nested in the container `parent`,
    /// as field `key` of a keyed parent or as the next element of an unkeyed one.
    func openNested(
        _ kind: Frame.Kind,
        in parent: FrameHandle,
        key: any CodingKey,
        keyed: Bool,
        parentPathDepth: Int
    ) -> FrameHandle {
        do {
            try prepare(parent)
        } catch {
            return .dead
        }
        frames[parent.index].count += 1
        if path.count > parentPathDepth { path.removeSubrange(parentPathDepth...) }
        var lengthOffset = -1
        if keyed {
            writer.write(string: key.stringValue)
            lengthOffset = writer.count
            writer.write(0)
        }
        let pathDepth = path.count
        path.append(key)
        return pushFrame(kind, lengthOffset: lengthOffset, pathDepth: pathDepth)
    }

    /// Starts a field of the keyed container `frame`; the caller writes the key next.
    @inline(__always)
    func beginField(_ frame: FrameHandle) throws(MultiprocessingError) {
        try prepare(frame)
        frames[frame.index].count += 1
    }

    /// Starts an element of the unkeyed container `frame`; returns the element's index.
    @inline(__always)
    func beginElement(_ frame: FrameHandle) throws(MultiprocessingError) -> Int {
        try prepare(frame)
        let index = frames[frame.index].count
        frames[frame.index].count = index + 1
        return index
    }

    /// Starts the one value of the single-value container `frame`.
    @inline(__always)
    func beginSingle(_ frame: FrameHandle) throws(MultiprocessingError) {
        try prepare(frame)
        guard frames[frame.index].count == 0 else {
            throw fail("a single-value container was asked to encode a second value")
        }
        frames[frame.index].count = 1
    }

    // MARK: Encoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let frame = openContainer(.keyed, level: levelBase, owner: nil)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<Key>(encoder: self, frame: frame, pathDepth: path.count))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let frame = openContainer(.unkeyed, level: levelBase, owner: nil)
        return BinaryUnkeyedEncodingContainer(encoder: self, frame: frame, pathDepth: path.count)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        let frame = openContainer(.singleValue, level: levelBase, owner: nil)
        return BinarySingleValueEncodingContainer(encoder: self, frame: frame, pathDepth: path.count)
    }
}
