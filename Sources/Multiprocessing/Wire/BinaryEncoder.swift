// A compact binary encoding of Codable values, used for every item and result that
// crosses a process boundary. Both ends are always the same build of the program, so
// the format carries no type information and no version: it is only as self-describing
// as the decoder needs to find field boundaries. Everything is little-endian.
//
// Byte format (`varint` is unsigned LEB128, `len` a varint byte or element count):
//
//   Int, Int8...Int64, UInt, UInt8...UInt64, Int128, UInt128
//                   fixed width, little-endian (Int and UInt are 8 bytes)
//   Float, Double   the bit pattern, fixed width, little-endian
//   Bool            one byte, 0 or 1 (anything else is a decoding error)
//   String          len, then the UTF-8 bytes (invalid UTF-8 is repaired with U+FFFD
//                   when decoding, it never fails)
//   single value    just the value
//   unkeyed         len (element count), then the elements back to back; every element
//                   takes at least one byte
//   keyed           len (field count), then per field:
//                     key   = len + UTF-8 of the key's `stringValue` (`intValue` is never
//                             used, so Int-keyed dictionaries carry decimal strings)
//                     value = len (value byte count), then the value's bytes;
//                             a zero-length value is nil
//   Optional<W>     in single-value and unkeyed positions: one presence byte (0 = nil,
//                   1 = some) followed by the W when present; as a keyed field: a
//                   zero-length value for nil, else W in its single-value form
//   POD arrays      Array, ArraySlice and ContiguousArray of fixed-width integers, Float,
//                   Double and SIMD2...SIMD64 vectors of those: len (element count), then
//                   the elements' raw memory (count * stride bytes, SIMD padding included);
//                   all three collection types produce identical bytes; Foundation's
//                   `Data` is written as the `[UInt8]` of its bytes (Data+Coding.swift)
//
// Counts and lengths that are only known once a container or value is complete are
// written as a one-byte placeholder and patched afterwards; a count or length of 128 or
// more grows the placeholder in place (one memmove of the bytes after it).
//
// Limitations for hand-written Codable code:
//   - `encodeNil()` writes a 0 presence byte and `decodeNil()` in unkeyed and
//     single-value containers consumes the next byte only when it is 0. Code that pairs
//     `encodeNil()` with encoding the *unwrapped* value (instead of encoding the Optional
//     itself), or that calls `Optional.encode(to:)` / `Optional(from:)` directly, is
//     ambiguous: a present value whose first byte is 0 (e.g. the Int 0) decodes as nil.
//     Encode and decode the Optional (`encode(x)`, `decode(Int?.self)`) instead.
//   - Every value takes at least one byte, so that a corrupt element count can never
//     make the decoder loop without consuming input: a value whose `encode(to:)` writes
//     nothing is written as one 0 byte, and a value whose `init(from:)` reads nothing
//     consumes one byte that must be 0. (This is also what makes an empty struct work:
//     its synthesized `encode(to:)` opens a keyed container, writing a field count of 0,
//     while its synthesized `init(from:)` asks for no container at all.) A type whose
//     `init(from:)` reads nothing although its `encode(to:)` wrote a value fails to
//     decode. A `superEncoder()` of an unkeyed container must be used to encode
//     something.
//   - Containers must be used in order: once a container has written a later sibling
//     (or its value has finished), writing to an earlier nested container fails with
//     `encodingFailed` instead of producing bytes out of order. Decoding reads unkeyed
//     elements strictly in sequence, so an `init(from:)` must read every element of an
//     unkeyed container it opens (leftovers inside a keyed field are harmless; elsewhere
//     they make what follows fail to decode). Trying one type and then another on a
//     failure rewinds correctly, but without type tags the bytes of one type may well
//     decode as another.
//   - Values nest at most `BinaryCodec.maximumDepth` (1,024) levels deep, in both
//     directions; the array of a chunk's items does not count (`asItems`). A level is a
//     value whose own `encode(to:)` / `init(from:)` runs: a struct, enum, class or
//     collection, but not a primitive, an Optional (its wrapped value counts) or a POD
//     array. Below that limit, a value also fails (instead of crashing) when the thread
//     it is coded on has less than `BinaryCodec.stackReserve` bytes of stack left.
//   - Synthesized Codable writes optional properties with `encodeIfPresent`, so, as with
//     JSON, a `T??` property holding `.some(nil)` decodes as nil. `T??` written with
//     `encode(_:forKey:)` (read it back with `decode(T??.self, forKey:)`), in an array or
//     at the top level keeps both levels. A field written with `encode(x, forKey:)` for
//     an `x: T?` reads back with `decodeIfPresent(T.self, forKey:)` as well.
//
// Speed: a value's type is classified once per coder instance (primitive, fast path, or
// plain Codable) and the answer cached, and the coder instances themselves are reused
// (`BinarySpareInstances`), so a warm top-level encode or decode allocates nothing but
// the container boxes of the standard library.

import CMultiprocessingShim
import Synchronization

/// The binary codec used for everything that crosses a process boundary.
///
/// See the header of `BinaryEncoder.swift` for the byte format. Both entry points throw
/// only ``MultiprocessingError`` with the code ``MultiprocessingError/Code/encodingFailed``
/// or ``MultiprocessingError/Code/decodingFailed``.
enum BinaryCodec {
    /// The deepest nesting of values that is encoded or decoded; deeper data (or a cyclic
    /// object graph, or corrupt data) fails instead of overflowing the stack. 1,024: a
    /// recursive enum of 1,023 links (JSONEncoder takes such values); at the measured cost
    /// of a level (see ``stackReserve``), 2.5 MiB of stack in a release build, 5 MiB in
    /// debug, which the usual 8 MiB thread stacks hold. Threads with less fail earlier,
    /// with ``stackMessage(_:depth:)``.
    static let maximumDepth = 1_024

    /// From this depth on, each level first checks the stack left on its thread.
    /// Shallower values (nearly all) never pay for the check, which costs a thread-local
    /// load.
    static let stackCheckDepth = 32

    /// The stack a level must leave free below itself, or the value fails with the depth
    /// error instead of crashing: room for one more level of Codable code (synthesized
    /// code took 1.8 KiB a level to encode and 2.4 KiB to decode in a release build, 4.2
    /// and 5 KiB in debug: Linux, Swift 6.3, a recursive enum) and for building the
    /// error, with a wide margin.
    static let stackReserve = 128 * 1_024

    /// Whether a value at `depth` must fail for want of stack on this thread.
    @inline(__always)
    static func stackIsLow(atDepth depth: Int) -> Bool {
        depth >= stackCheckDepth && mp_stack_remaining() < stackReserve
    }

    /// The message for a value that is nested too deep for the thread's stack.
    static func stackMessage(_ type: Any.Type, depth: Int) -> String {
        "\(type) is nested \(depth) levels deep, more than this thread's stack holds (under "
            + "\(stackReserve / 1_024) KiB left): nest the value less deeply, or make the pool call from a thread "
            + "with a larger stack (the default size of new threads follows `ulimit -s`; with `ulimit -s unlimited` "
            + "Linux gives them only 2 MiB)"
    }

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

    /// The keys kept at each end of a long coding path in an error message.
    static let describedPathEnds = 4

    /// Describes a coding path for error messages, for example `items[3].name`. A path
    /// of more than 12 keys keeps its first and last ``describedPathEnds`` and says how
    /// many are left out (a path 1,000 levels deep would be kilobytes of text).
    static func describe(_ path: [any CodingKey]) -> String {
        if path.isEmpty { return "the top level" }
        if path.count > 3 * describedPathEnds {
            let omitted = path.count - 2 * describedPathEnds
            return describeKeys(path.prefix(describedPathEnds)) + " … (\(omitted) more levels) … "
                + describeKeys(path.suffix(describedPathEnds))
        }
        return describeKeys(path[...])
    }

    /// The keys of a coding path, written as ``describe(_:)`` does.
    private static func describeKeys(_ path: ArraySlice<any CodingKey>) -> String {
        var text = ""
        for key in path {
            if let index = key as? BinaryCodingKey, index.index >= 0 {
                text += "[\(index.index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text
    }

    /// Describes an error thrown by Codable code, in one line.
    static func describe(_ error: any Error) -> String {
        if let error = error as? DecodingError {
            switch error {
            case .typeMismatch(let type, let context):
                return "type mismatch for \(type) at \(describe(context.codingPath)): \(context.debugDescription)"
            case .valueNotFound(let type, let context):
                return "no value of type \(type) at \(describe(context.codingPath)): \(context.debugDescription)"
            case .keyNotFound(let key, let context):
                return
                    "no value for key \"\(key.stringValue)\" at \(describe(context.codingPath)): \(context.debugDescription)"
            case .dataCorrupted(let context):
                return "data corrupted at \(describe(context.codingPath)): \(context.debugDescription)"
            @unknown default:
                return "\(error)"
            }
        }
        if let error = error as? EncodingError {
            switch error {
            case .invalidValue(let value, let context):
                return "invalid value \(value) at \(describe(context.codingPath)): \(context.debugDescription)"
            @unknown default:
                return "\(error)"
            }
        }
        return "\(error)"
    }
}

/// The coding key the codec makes up itself: an unkeyed container's element index, or
/// the `super` key of `superEncoder()` / `superDecoder()`.
struct BinaryCodingKey: CodingKey {
    /// The element index, or -1 for the `super` key.
    let index: Int

    /// The key of element `index` of an unkeyed container.
    init(index: Int) { self.index = index }

    /// The key `superEncoder()` and `superDecoder()` use.
    static let `super` = BinaryCodingKey(index: -1)

    init?(stringValue: String) {
        guard stringValue == "super" else { return nil }
        index = -1
    }

    init?(intValue: Int) {
        guard intValue >= 0 else { return nil }
        index = intValue
    }

    var stringValue: String { index >= 0 ? "Index \(index)" : "super" }
    var intValue: Int? { index >= 0 ? index : nil }
}

/// Reinterprets `value` as `To`; callers have checked that `From` and `To` are the same
/// type.
@inline(__always)
func binaryIdentityCast<From, To>(_ value: From, to type: To.Type) -> To {
    assert(From.self == To.self, "identity cast between different types")
    return unsafeBitCast(value, to: To.self)
}

/// The types the codec reads and writes itself, without their Codable conformance.
enum BinaryPrimitive: UInt8 {
    case string, int, double, bool, float, int64, uint8, int32, uint, uint64, uint32, int8, int16, uint16
    case int128, uint128

    /// The primitive `type` is, or nil.
    @inline(__always)
    init?<T>(_ type: T.Type) {
        if T.self == String.self {
            self = .string
        } else if T.self == Int.self {
            self = .int
        } else if T.self == Double.self {
            self = .double
        } else if T.self == Bool.self {
            self = .bool
        } else if T.self == Float.self {
            self = .float
        } else if T.self == Int64.self {
            self = .int64
        } else if T.self == UInt8.self {
            self = .uint8
        } else if T.self == Int32.self {
            self = .int32
        } else if T.self == UInt.self {
            self = .uint
        } else if T.self == UInt64.self {
            self = .uint64
        } else if T.self == UInt32.self {
            self = .uint32
        } else if T.self == Int8.self {
            self = .int8
        } else if T.self == Int16.self {
            self = .int16
        } else if T.self == UInt16.self {
            self = .uint16
        } else if T.self == Int128.self {
            self = .int128
        } else if T.self == UInt128.self {
            self = .uint128
        } else {
            return nil
        }
    }

    /// Writes `value`, which is of this primitive's type.
    ///
    /// - Parameter lengthPrefixed: write the value's byte length first (keyed fields).
    @inline(__always)
    func write<T>(_ value: T, lengthPrefixed: Bool, into writer: inout ByteWriter) {
        switch self {
        case .string: Self.writeString(binaryIdentityCast(value, to: String.self), lengthPrefixed, &writer)
        case .int: Self.writeFixed(binaryIdentityCast(value, to: Int.self), lengthPrefixed, &writer)
        case .double: Self.writeFixed(binaryIdentityCast(value, to: Double.self).bitPattern, lengthPrefixed, &writer)
        case .bool: Self.writeFixed(binaryIdentityCast(value, to: Bool.self) ? 1 as UInt8 : 0, lengthPrefixed, &writer)
        case .float: Self.writeFixed(binaryIdentityCast(value, to: Float.self).bitPattern, lengthPrefixed, &writer)
        case .int64: Self.writeFixed(binaryIdentityCast(value, to: Int64.self), lengthPrefixed, &writer)
        case .uint8: Self.writeFixed(binaryIdentityCast(value, to: UInt8.self), lengthPrefixed, &writer)
        case .int32: Self.writeFixed(binaryIdentityCast(value, to: Int32.self), lengthPrefixed, &writer)
        case .uint: Self.writeFixed(binaryIdentityCast(value, to: UInt.self), lengthPrefixed, &writer)
        case .uint64: Self.writeFixed(binaryIdentityCast(value, to: UInt64.self), lengthPrefixed, &writer)
        case .uint32: Self.writeFixed(binaryIdentityCast(value, to: UInt32.self), lengthPrefixed, &writer)
        case .int8: Self.writeFixed(binaryIdentityCast(value, to: Int8.self), lengthPrefixed, &writer)
        case .int16: Self.writeFixed(binaryIdentityCast(value, to: Int16.self), lengthPrefixed, &writer)
        case .uint16: Self.writeFixed(binaryIdentityCast(value, to: UInt16.self), lengthPrefixed, &writer)
        case .int128: Self.writeFixed(binaryIdentityCast(value, to: Int128.self), lengthPrefixed, &writer)
        case .uint128: Self.writeFixed(binaryIdentityCast(value, to: UInt128.self), lengthPrefixed, &writer)
        }
    }

    /// Reads a value of this primitive's type, which is `T`.
    @inline(__always)
    func read<T>(as type: T.Type, from reader: inout ByteReader) throws(MultiprocessingError) -> T {
        switch self {
        case .string: return binaryIdentityCast(try reader.readString(), to: T.self)
        case .int: return binaryIdentityCast(try reader.read(fixed: Int.self), to: T.self)
        case .double: return binaryIdentityCast(Double(bitPattern: try reader.read(fixed: UInt64.self)), to: T.self)
        case .bool: return binaryIdentityCast(try Self.readBool(from: &reader), to: T.self)
        case .float: return binaryIdentityCast(Float(bitPattern: try reader.read(fixed: UInt32.self)), to: T.self)
        case .int64: return binaryIdentityCast(try reader.read(fixed: Int64.self), to: T.self)
        case .uint8: return binaryIdentityCast(try reader.read(fixed: UInt8.self), to: T.self)
        case .int32: return binaryIdentityCast(try reader.read(fixed: Int32.self), to: T.self)
        case .uint: return binaryIdentityCast(try reader.read(fixed: UInt.self), to: T.self)
        case .uint64: return binaryIdentityCast(try reader.read(fixed: UInt64.self), to: T.self)
        case .uint32: return binaryIdentityCast(try reader.read(fixed: UInt32.self), to: T.self)
        case .int8: return binaryIdentityCast(try reader.read(fixed: Int8.self), to: T.self)
        case .int16: return binaryIdentityCast(try reader.read(fixed: Int16.self), to: T.self)
        case .uint16: return binaryIdentityCast(try reader.read(fixed: UInt16.self), to: T.self)
        case .int128: return binaryIdentityCast(try reader.read(fixed: Int128.self), to: T.self)
        case .uint128: return binaryIdentityCast(try reader.read(fixed: UInt128.self), to: T.self)
        }
    }

    /// Writes a fixed-width integer, after its byte length when `lengthPrefixed`.
    @inline(__always)
    static func writeFixed<I: FixedWidthInteger>(_ value: I, _ lengthPrefixed: Bool, _ writer: inout ByteWriter) {
        if lengthPrefixed { writer.write(UInt8(MemoryLayout<I>.size)) }
        writer.write(fixed: value)
    }

    /// Writes a string (varint length and UTF-8), after its total byte length when
    /// `lengthPrefixed`.
    @inline(__always)
    static func writeString(_ value: String, _ lengthPrefixed: Bool, _ writer: inout ByteWriter) {
        if lengthPrefixed {
            let count = value.utf8.count
            writer.write(length: varintSize(count) + count)
        }
        writer.write(string: value)
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

    /// The number of bytes the varint encoding of `value` takes.
    @inline(__always)
    static func varintSize(_ value: Int) -> Int {
        var size = 1
        var rest = UInt64(value) >> 7
        while rest != 0 {
            size += 1
            rest >>= 7
        }
        return size
    }
}

/// How the generic paths of a coder handle one type.
enum BinaryTypeKind<FastPath> {
    /// Through its Codable conformance.
    case nested
    /// Directly, as a primitive.
    case primitive(BinaryPrimitive)
    /// Through a fast-path conformance (Optional, POD arrays).
    case fast(FastPath)
}

/// Remembers how a coder handles each type it meets, so that conformances are looked
/// up once per coder instance and type instead of once per value. Direct-mapped, 16
/// entries; a collision only costs a second lookup.
struct BinaryTypeCache<FastPath> {
    /// The type metadata address of each entry, 0 when empty.
    private var types = [UInt](repeating: 0, count: 16)
    /// The kind of each entry's type.
    private var kinds = [BinaryTypeKind<FastPath>](repeating: .nested, count: 16)

    /// The entry a type would use.
    @inline(__always)
    private static func slot(_ id: UInt) -> Int { Int(truncatingIfNeeded: (id >> 4) ^ (id >> 11)) & 15 }

    /// The cached kind of the type with metadata address `id`, or nil.
    @inline(__always)
    func kind(_ id: UInt) -> BinaryTypeKind<FastPath>? {
        let slot = Self.slot(id)
        return types[slot] == id ? kinds[slot] : nil
    }

    /// Caches `kind` for the type with metadata address `id`.
    mutating func insert(_ id: UInt, _ kind: BinaryTypeKind<FastPath>) {
        let slot = Self.slot(id)
        types[slot] = id
        kinds[slot] = kind
    }

    /// How a coder handles `T`: the cached answer, else a primitive, a type that
    /// `fastPath` (the coder's cast to its fast-path protocol) accepts, or a nested
    /// Codable value, cached.
    @inline(__always)
    mutating func kind<T>(of type: T.Type, fastPath: (T.Type) -> FastPath?) -> BinaryTypeKind<FastPath> {
        let id = UInt(bitPattern: ObjectIdentifier(T.self))
        if let kind = kind(id) { return kind }
        let kind: BinaryTypeKind<FastPath>
        if let primitive = BinaryPrimitive(T.self) {
            kind = .primitive(primitive)
        } else if let fast = fastPath(T.self) {
            kind = .fast(fast)
        } else {
            kind = .nested
        }
        insert(id, kind)
        return kind
    }
}

/// A few idle coder instances kept for reuse. Ownership moves with an atomic exchange,
/// so each instance has one user at a time; when all slots are taken, callers simply
/// make a new instance, and surplus instances are dropped when they are given back.
final class BinarySpareInstances<Object: AnyObject>: Sendable {
    /// The slots: the bits of a retained object pointer each, or 0.
    private let slot0 = Atomic<UInt>(0)
    private let slot1 = Atomic<UInt>(0)
    private let slot2 = Atomic<UInt>(0)
    private let slot3 = Atomic<UInt>(0)

    /// Takes an idle instance, if there is one.
    @inline(__always)
    func take() -> Object? {
        if let object = Self.take(slot0) { return object }
        if let object = Self.take(slot1) { return object }
        if let object = Self.take(slot2) { return object }
        return Self.take(slot3)
    }

    /// Gives `object` back for reuse; the caller must not use it afterwards.
    @inline(__always)
    func put(_ object: Object) {
        let unmanaged = Unmanaged.passRetained(object)
        let bits = UInt(bitPattern: unmanaged.toOpaque())
        if Self.put(bits, slot0) || Self.put(bits, slot1) || Self.put(bits, slot2) || Self.put(bits, slot3) { return }
        unmanaged.release()
    }

    /// Takes the instance in `slot`, if any.
    @inline(__always)
    private static func take(_ slot: borrowing Atomic<UInt>) -> Object? {
        guard slot.load(ordering: .relaxed) != 0 else { return nil }
        guard let raw = UnsafeMutableRawPointer(bitPattern: slot.exchange(0, ordering: .acquiring)) else { return nil }
        return Unmanaged<Object>.fromOpaque(raw).takeRetainedValue()
    }

    /// Stores the retained instance `bits` in `slot` when the slot is empty.
    @inline(__always)
    private static func put(_ bits: UInt, _ slot: borrowing Atomic<UInt>) -> Bool {
        slot.compareExchange(expected: 0, desired: bits, ordering: .releasing).exchanged
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
