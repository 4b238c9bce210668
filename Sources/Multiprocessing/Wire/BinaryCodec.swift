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

import Synchronization

/// The binary codec used for everything that crosses a process boundary.
///
/// See the header of this file for the byte format. Both entry points throw
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
        depth >= stackCheckDepth && Platform.stackRemaining() < stackReserve
    }

    /// The message for a value that is nested too deep for the thread's stack.
    static func stackMessage(_ type: Any.Type, depth: Int) -> String {
        "\(type) is nested \(depth) levels deep, more than this thread's stack holds (under "
            + "\(stackReserve / 1_024) KiB left): nest the value less deeply, or make the pool call from a thread "
            + "with a larger stack (the default size of new threads follows `ulimit -s`; with `ulimit -s unlimited` "
            + "Linux gives them only 2 MiB)"
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
