import Foundation
import Testing

@testable import Multiprocessing

// MARK: - Helpers

/// Encodes `value` with the binary codec.
private func encoded<T: Encodable>(_ value: T) throws -> [UInt8] {
    var writer = ByteWriter()
    try BinaryCodec.encode(value, into: &writer)
    return writer.bytes
}

/// Encodes the elements of `slice` with the binary codec.
private func encoded<E: Encodable>(_ slice: ArraySlice<E>) throws -> [UInt8] {
    var writer = ByteWriter()
    try BinaryCodec.encode(slice, into: &writer)
    return writer.bytes
}

/// Decodes one `T` from `bytes`, which it must use up.
private func decoded<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
    try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
        var reader = ByteReader(raw)
        let value = try BinaryCodec.decode(T.self, from: &reader)
        guard reader.isAtEnd else {
            throw MultiprocessingError(.decodingFailed, "\(reader.remaining) bytes left over")
        }
        return value
    }
}

/// Encodes and decodes `value`.
private func roundTrip<T: Codable>(_ value: T) throws -> T {
    try decoded(T.self, from: encoded(value))
}

/// Checks that `body` throws a `MultiprocessingError` with `code`; returns the error.
@discardableResult
private func expectCodecError(
    _ code: MultiprocessingError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> MultiprocessingError? {
    do {
        try body()
        Issue.record("expected a \(code) error, but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as MultiprocessingError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a MultiprocessingError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// The number of bytes the varint encoding of `value` takes.
private func varintSize(_ value: Int) -> Int {
    var size = 1
    var rest = value >> 7
    while rest != 0 {
        size += 1
        rest >>= 7
    }
    return size
}

/// A small deterministic random number generator (SplitMix64), for the seeded tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Test types

private struct Point: Codable, Equatable, Hashable {
    var x: Int
    var y: Double
    var name: String
}

private struct Line: Codable, Equatable {
    var from: Point
    var to: Point
    var tags: [String]
    var weight: Float?
}

private struct Drawing: Codable, Equatable {
    var title: String
    var lines: [Line]
    var origin: Point?
    var counts: [String: Int]
    var shape: Shape
    var flags: [Bool]
    var samples: [Double]
}

private enum Shape: Codable, Equatable {
    case empty
    case circle(radius: Double)
    case polygon([Point], closed: Bool)
    case labelled(String, Int8?)
}

private struct Optionals: Codable, Equatable {
    var a: Int?
    var b: String?
    var c: Point?
    var d: Int??
    var e: [Int?]
    var f: [String?]?
}

private enum Color: String, Codable {
    case red, green, blue
}

private enum Level: Int, Codable {
    case low = 1, high = 2
}

/// Encodes its fields in one order and decodes them in another.
private struct Shuffled: Codable, Equatable {
    var a: Int
    var b: String
    var c: [Int]
    var d: Bool

    enum CodingKeys: String, CodingKey {
        case a, b, c, d
    }

    init(a: Int, b: String, c: [Int], d: Bool) {
        self.a = a
        self.b = b
        self.c = c
        self.d = d
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        d = try container.decode(Bool.self, forKey: .d)
        c = try container.decode([Int].self, forKey: .c)
        a = try container.decode(Int.self, forKey: .a)
        b = try container.decode(String.self, forKey: .b)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(a, forKey: .a)
        try container.encode(b, forKey: .b)
        try container.encode(c, forKey: .c)
        try container.encode(d, forKey: .d)
    }
}

/// Uses nested containers, `superEncoder` and `decodeNil` by hand.
private struct HandWritten: Codable, Equatable {
    var values: [Int]
    var matrix: [[UInt8]]
    var note: String?
    var base: Point

    enum CodingKeys: String, CodingKey {
        case values, matrix, note, meta
    }

    enum MetaKeys: String, CodingKey {
        case count, first
    }

    init(values: [Int], matrix: [[UInt8]], note: String?, base: Point) {
        self.values = values
        self.matrix = matrix
        self.note = note
        self.base = base
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var list = container.nestedUnkeyedContainer(forKey: .values)
        for value in values { try list.encode(value) }
        var rows = container.nestedUnkeyedContainer(forKey: .matrix)
        for row in matrix {
            var nested = rows.nestedUnkeyedContainer()
            for cell in row { try nested.encode(cell) }
        }
        if let note {
            try container.encode(note, forKey: .note)
        } else {
            try container.encodeNil(forKey: .note)
        }
        var meta = container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        try meta.encode(values.count, forKey: .count)
        try meta.encodeIfPresent(values.first, forKey: .first)
        try base.encode(to: container.superEncoder())
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        base = try Point(from: container.superDecoder())
        let meta = try container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        let count = try meta.decode(Int.self, forKey: .count)
        let first = try meta.decodeIfPresent(Int.self, forKey: .first)
        var list = try container.nestedUnkeyedContainer(forKey: .values)
        #expect(list.count == count)
        var values: [Int] = []
        while !list.isAtEnd { values.append(try list.decode(Int.self)) }
        #expect(values.first == first)
        self.values = values
        var rows = try container.nestedUnkeyedContainer(forKey: .matrix)
        var matrix: [[UInt8]] = []
        while !rows.isAtEnd {
            var nested = try rows.nestedUnkeyedContainer()
            var row: [UInt8] = []
            while !nested.isAtEnd { row.append(try nested.decode(UInt8.self)) }
            matrix.append(row)
        }
        self.matrix = matrix
        note = try container.decodeNil(forKey: .note) ? nil : try container.decode(String.self, forKey: .note)
    }
}

private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

private final class Dog: Animal {
    var tricks: [String]

    enum CodingKeys: String, CodingKey {
        case tricks
    }

    init(name: String, tricks: [String]) {
        self.tricks = tricks
        super.init(name: name)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tricks = try container.decode([String].self, forKey: .tricks)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tricks, forKey: .tricks)
        try super.encode(to: container.superEncoder())
    }
}

/// A subclass that shares its decoder with its superclass (keys merged in one container).
private final class Cat: Animal {
    var lives: Int

    enum CodingKeys: String, CodingKey {
        case lives
    }

    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lives = try container.decode(Int.self, forKey: .lives)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lives, forKey: .lives)
        try super.encode(to: encoder)
    }
}

/// A subclass that stores itself in an unkeyed container, its superclass in an element.
private final class Puppy: Animal {
    var toys: [String]
    var scores: [Int: Bool]

    enum ScoreKeys: String, CodingKey {
        case best, worst
    }

    init(name: String, toys: [String], scores: [Int: Bool]) {
        self.toys = toys
        self.scores = scores
        super.init(name: name)
    }

    required init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        toys = try container.decode([String].self)
        scores = [:]
        try super.init(from: container.superDecoder())
        let keyed = try container.nestedContainer(keyedBy: ScoreKeys.self)
        var scores: [Int: Bool] = [:]
        scores[1] = try keyed.decodeIfPresent(Bool.self, forKey: .best)
        scores[0] = try keyed.decodeIfPresent(Bool.self, forKey: .worst)
        var flags = try container.nestedUnkeyedContainer()
        while !flags.isAtEnd {
            let key = try flags.decode(Int.self)
            scores[key] = try flags.decode(Bool.self)
        }
        self.scores = scores
        #expect(container.isAtEnd)
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(toys)
        try super.encode(to: container.superEncoder())
        var keyed = container.nestedContainer(keyedBy: ScoreKeys.self)
        try keyed.encodeIfPresent(scores[1], forKey: .best)
        try keyed.encodeIfPresent(scores[0], forKey: .worst)
        var flags = container.nestedUnkeyedContainer()
        for (key, value) in scores.sorted(by: { $0.key < $1.key }) where key > 1 {
            try flags.encode(key)
            try flags.encode(value)
        }
    }
}

private struct Wrapper: Codable, Equatable {
    var inner: Int

    init(_ inner: Int) { self.inner = inner }

    init(from decoder: any Decoder) throws {
        inner = try decoder.singleValueContainer().decode(Int.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(inner)
    }
}

private indirect enum Tree: Codable, Equatable, Sendable {
    case leaf(Int)
    case node(Tree, Tree)
}

private struct Empty: Codable, Equatable {}

/// A value made only of nested unkeyed containers.
private struct Chain: Codable, Equatable {
    var next: [Chain]

    init(next: [Chain]) { self.next = next }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        next = []
        while !container.isAtEnd { next.append(try container.decode(Chain.self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for link in next { try container.encode(link) }
    }
}

private struct Throwing: Codable {
    struct Failure: Error {}

    init() {}
    init(from decoder: any Decoder) throws { throw Failure() }
    func encode(to encoder: any Encoder) throws { throw Failure() }
}

private struct WritesNothing: Codable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
}

/// Keeps an unkeyed container and writes to it after a later sibling has been written.
private struct OutOfOrder: Encodable {
    enum CodingKeys: String, CodingKey {
        case a, b
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var first = container.nestedUnkeyedContainer(forKey: .a)
        try first.encode(1)
        try container.encode(2, forKey: .b)
        try first.encode(3)
    }
}

private struct Small: Codable, Equatable {
    var x: Int
    var y: Int
}

private struct Bigger: Codable, Equatable {
    var x: Int
    var y: Int
    var z: Int
}

private struct Outer: Codable, Equatable {
    var inner: Bigger
}

private struct OuterSmall: Codable, Equatable {
    var inner: Small
}

// MARK: - Tests

@Suite("Binary codec")
struct BinaryCodecTests {
    @Test("fixed-width integers round-trip at their limits")
    func integers() throws {
        func check<I: FixedWidthInteger & Codable>(_ type: I.Type) throws {
            for value in [I.min, I.max, 0, 1, I.max / 3] {
                #expect(try roundTrip(value) == value)
                #expect(try encoded(value).count == MemoryLayout<I>.size)
            }
        }
        try check(Int.self)
        try check(Int8.self)
        try check(Int16.self)
        try check(Int32.self)
        try check(Int64.self)
        try check(Int128.self)
        try check(UInt.self)
        try check(UInt8.self)
        try check(UInt16.self)
        try check(UInt32.self)
        try check(UInt64.self)
        try check(UInt128.self)
        #expect(try encoded(Int.min) == [0, 0, 0, 0, 0, 0, 0, 0x80])
        #expect(try encoded(UInt16(0x1234)) == [0x34, 0x12])
    }

    @Test("floats keep their exact bit patterns, NaN payloads included")
    func floats() throws {
        let doubles: [Double] = [
            0, -0.0, 1.5, -.pi, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
            .nan, .signalingNaN, Double(nan: 0x1234, signaling: false), -Double.nan,
        ]
        for value in doubles {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
            #expect(try roundTrip([value])[0].bitPattern == value.bitPattern)
        }
        let floats: [Float] = [0, -0.0, 3.25, .infinity, .nan, .signalingNaN, Float(nan: 0x55, signaling: true)]
        for value in floats {
            #expect(try roundTrip(value).bitPattern == value.bitPattern)
        }
        #expect(try encoded(1.0 as Double) == [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
    }

    @Test("Bool is one byte 0 or 1, and other bytes are rejected")
    func bools() throws {
        #expect(try encoded(true) == [1])
        #expect(try encoded(false) == [0])
        #expect(try roundTrip(true) == true)
        #expect(try roundTrip([true, false, true]) == [true, false, true])
        expectCodecError(.decodingFailed) { _ = try decoded(Bool.self, from: [2]) }
        expectCodecError(.decodingFailed) { _ = try decoded([Bool].self, from: [2, 1, 2]) }
        expectCodecError(.decodingFailed) { _ = try decoded(Bool.self, from: [0xFF]) }
    }

    @Test("strings: empty, unicode, long, and invalid UTF-8 repaired")
    func strings() throws {
        let long = String(repeating: "abc🙂", count: 100)
        for value in ["", "a", "héllo wörld", "🙂👍🏽 e\u{301} 日本語", "\0nul", long] {
            #expect(try roundTrip(value) == value)
            #expect(try encoded(value).count == varintSize(value.utf8.count) + value.utf8.count)
        }
        #expect(try encoded("hi") == [2, 0x68, 0x69])
        #expect(try decoded(String.self, from: [2, 0xFF, 0x41]) == "\u{FFFD}A")
    }

    @Test("nested structs, arrays of structs and RawRepresentable enums")
    func structs() throws {
        let point = Point(x: -7, y: 2.5, name: "p")
        #expect(try roundTrip(point) == point)
        let line = Line(from: point, to: Point(x: 1, y: 0, name: ""), tags: ["a", "β"], weight: 0.5)
        #expect(try roundTrip(line) == line)
        #expect(try roundTrip([line, line]) == [line, line])
        #expect(try roundTrip([Color.red, .blue]) == [.red, .blue])
        #expect(try roundTrip(Level.high) == .high)
        #expect(try roundTrip(Wrapper(42)) == Wrapper(42))
        #expect(try encoded(Wrapper(42)) == encoded(42))
        #expect(try roundTrip([Empty(), Empty()]) == [Empty(), Empty()])
        #expect(try encoded(Empty()) == [0])
        struct HasEmpty: Codable, Equatable { var a: Empty; var b: [Empty]; var c: Empty?; var d: Int }
        let hasEmpty = HasEmpty(a: Empty(), b: [Empty()], c: Empty(), d: 4)
        #expect(try roundTrip(hasEmpty) == hasEmpty)
        let big = (0..<300).map { Point(x: $0, y: Double($0), name: String(repeating: "n", count: $0)) }
        #expect(try roundTrip(big) == big)
    }

    @Test("the byte layout of a keyed container")
    func keyedLayout() throws {
        struct Pair: Codable { var a: UInt8; var bb: String }
        #expect(try encoded(Pair(a: 7, bb: "x")) == [2, 1, 0x61, 1, 7, 2, 0x62, 0x62, 2, 1, 0x78])
    }

    @Test("enums with associated values")
    func enums() throws {
        let shapes: [Shape] = [
            .empty, .circle(radius: 2), .polygon([Point(x: 1, y: 2, name: "a")], closed: true),
            .labelled("l", nil), .labelled("m", -3),
        ]
        for shape in shapes { #expect(try roundTrip(shape) == shape) }
        #expect(try roundTrip(shapes) == shapes)
        let tree = Tree.node(.leaf(1), .node(.leaf(2), .leaf(3)))
        #expect(try roundTrip(tree) == tree)
    }

    @Test("optionals in every position")
    func optionals() throws {
        #expect(try encoded(Int?.none) == [0])
        #expect(try encoded(Int?.some(5)) == [1, 5, 0, 0, 0, 0, 0, 0, 0])
        #expect(try roundTrip(Int?.none) == nil)
        #expect(try roundTrip(Int?.some(0)) == 0)
        #expect(try roundTrip(String??.some(nil)) == .some(nil))
        #expect(try roundTrip(String??.none) == .none)
        #expect(try roundTrip(Point?.some(Point(x: 1, y: 1, name: "o")))?.name == "o")
        let list: [Int?] = [1, nil, 0, nil, -1]
        #expect(try roundTrip(list) == list)
        #expect(try encoded(list).count == 1 + 3 * 9 + 2)
        let values = [
            Optionals(a: nil, b: nil, c: nil, d: nil, e: [], f: nil),
            Optionals(a: 1, b: "", c: Point(x: 0, y: 0, name: "c"), d: .some(3), e: [nil, 2], f: [nil, "s"]),
            Optionals(a: 0, b: nil, c: nil, d: .some(nil), e: [nil], f: []),
        ]
        for value in values {
            var expected = value
            // Like JSON, synthesized `encodeIfPresent` cannot keep `.some(nil)` in a field.
            if case .some(.none) = value.d { expected.d = .none }
            #expect(try roundTrip(value) == expected)
        }
        expectCodecError(.decodingFailed) { _ = try decoded(Int?.self, from: [2, 0, 0, 0, 0, 0, 0, 0, 0]) }
    }

    @Test("optionals encoded as keyed fields by hand keep every level")
    func keyedOptionals() throws {
        struct Explicit: Codable, Equatable {
            var a: Int??
            var b: String?
            var c: Point??
            var d: [Int?]?

            enum CodingKeys: String, CodingKey {
                case a, b, c, d
            }

            init(a: Int??, b: String?, c: Point??, d: [Int?]?) {
                self.a = a
                self.b = b
                self.c = c
                self.d = d
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                a = try container.decode(Int??.self, forKey: .a)
                b = try container.decode(String?.self, forKey: .b)
                c = try container.decode(Point??.self, forKey: .c)
                d = try container.decode([Int?]?.self, forKey: .d)
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(a, forKey: .a)
                try container.encode(b, forKey: .b)
                try container.encode(c, forKey: .c)
                try container.encode(d, forKey: .d)
            }
        }
        let point = Point(x: 1, y: 2, name: "c")
        let values = [
            Explicit(a: .none, b: nil, c: .none, d: nil),
            Explicit(a: .some(.none), b: "", c: .some(.none), d: []),
            Explicit(a: .some(.some(0)), b: "b", c: .some(.some(point)), d: [nil, 1]),
        ]
        for value in values {
            #expect(try roundTrip(value) == value)
        }
        // `decodeIfPresent(T.self)` and `decodeNil(forKey:)` read what `encode(T?, forKey:)` wrote.
        struct Lenient: Decodable, Equatable {
            var b: String?
            var bIsNil: Bool

            enum CodingKeys: String, CodingKey {
                case b
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                bIsNil = try container.decodeNil(forKey: .b)
                b = try container.decodeIfPresent(String.self, forKey: .b)
            }
        }
        let lenient = try decoded(Lenient.self, from: encoded(values[2]))
        #expect(lenient.b == "b")
        #expect(!lenient.bIsNil)
        let lenientEmpty = try decoded(Lenient.self, from: encoded(values[1]))
        #expect(lenientEmpty.b == "")
        #expect(!lenientEmpty.bIsNil)
        let lenientNil = try decoded(Lenient.self, from: encoded(values[0]))
        #expect(lenientNil.b == nil)
        #expect(lenientNil.bIsNil)
    }

    @Test("decodeNil peeks in unkeyed and single-value containers")
    func decodeNil() throws {
        struct Mixed: Codable, Equatable {
            var values: [Int?]

            init(values: [Int?]) { self.values = values }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                for value in values { try container.encode(value) }
            }

            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                values = []
                while !container.isAtEnd {
                    if try container.decodeNil() {
                        values.append(nil)
                    } else {
                        values.append(try container.decode(Int?.self))
                    }
                }
            }
        }
        let value = Mixed(values: [nil, 4, nil])
        #expect(try roundTrip(value) == value)
    }

    @Test("dictionaries and sets")
    func dictionaries() throws {
        let byName = ["one": 1, "two": 2, "": 0, "ü": -1]
        #expect(try roundTrip(byName) == byName)
        let byNumber = [1: "a", -5: "b", 1_000_000: "c"]
        #expect(try roundTrip(byNumber) == byNumber)
        let byPoint = [Point(x: 1, y: 2, name: "k"): [1.5, 2.5]]
        #expect(try roundTrip(byPoint) == byPoint)
        let nested = ["a": ["x": [1, 2]], "b": [:]]
        #expect(try roundTrip(nested) == nested)
        let set: Set<String> = ["x", "y", "z"]
        #expect(try roundTrip(set) == set)
        let large = Dictionary(uniqueKeysWithValues: (0..<500).map { ("key\($0)", $0) })
        #expect(try roundTrip(large) == large)
    }

    @Test("POD arrays are a count plus raw memory")
    func podArrays() throws {
        func check<E: Codable & Equatable & _WirePOD>(_ values: [E]) throws {
            let bytes = try encoded(values)
            #expect(bytes.count == varintSize(values.count) + values.count * MemoryLayout<E>.stride)
            #expect(try decoded([E].self, from: bytes) == values)
            #expect(try encoded(ContiguousArray(values)) == bytes)
            #expect(try decoded(ContiguousArray<E>.self, from: bytes) == ContiguousArray(values))
            #expect(try encoded(values[...]) == bytes)
            let empty = try encoded([E]())
            #expect(empty == [0])
            #expect(try decoded([E].self, from: empty).isEmpty)
        }
        try check((0..<10_000).map { $0 * 7 - 5000 })
        try check([Int8.min, 0, Int8.max])
        try check([Int16.min, 1, Int16.max])
        try check([Int32.min, 2, Int32.max])
        try check([Int64.min, 3, Int64.max])
        try check([Int128.min, 4, Int128.max])
        try check([UInt.max, 0])
        try check((0..<200).map { UInt8(truncatingIfNeeded: $0) })
        try check([UInt16.max, 0])
        try check([UInt32.max, 0])
        try check([UInt64.max, 0])
        try check([UInt128.max, 0])
        try check([Float(1.5), -.infinity, .pi])
        try check([Double(1.5), -.infinity, .pi, .greatestFiniteMagnitude])
        try check([SIMD4<Float>(1, 2, 3, 4), SIMD4<Float>(-1, 0, .infinity, 8)])
        try check([SIMD2<Int32>(1, -2), SIMD2<Int32>(.max, .min)])
        try check([SIMD3<Double>(1, 2, 3)])
        try check([SIMD8<UInt8>(repeating: 9), SIMD8<UInt8>(0, 1, 2, 3, 4, 5, 6, 7)])
        try check([SIMD16<Int16>(repeating: -3)])
        try check([SIMD32<UInt32>(repeating: 12)])
        try check([SIMD64<Double>(repeating: 0.25)])
        #expect(try encoded([1, 2] as [Int16]) == [2, 1, 0, 2, 0])
        #expect(MemoryLayout<SIMD4<Float>>.stride == 16)
        #expect(try encoded([SIMD4<Float>](repeating: .one, count: 3)).count == 1 + 3 * 16)
        let nan = [Double.signalingNaN, Double(nan: 7, signaling: false)]
        #expect(try roundTrip(nan).map(\.bitPattern) == nan.map(\.bitPattern))
    }

    /// A struct with `Data` in each position a field can take.
    struct Blobs: Codable, Equatable {
        var main: Data
        var maybe: Data?
        var many: [Data]
    }

    @Test("Data takes the raw-bytes path: a count and the bytes, the same as a [UInt8]")
    func foundationData() throws {
        guard case .fast = BinaryValueEncoder().kind(of: Data.self) else {
            Issue.record("Data is encoded through its Codable conformance, byte by byte")
            return
        }
        guard
            case .fast = BinaryValueDecoder(reader: ByteReader(UnsafeRawBufferPointer(start: nil, count: 0)))
                .kind(of: Data.self)
        else {
            Issue.record("Data is decoded through its Codable conformance, byte by byte")
            return
        }
        var random = SeededGenerator(state: 0xDA7A)
        let block = Data((0..<65_536).map { _ in UInt8.random(in: 0...255, using: &random) })
        var large = Data()
        for _ in 0..<160 { large.append(block) }  // 10.5 MB
        for data in [Data(), Data([0]), Data([1, 2, 3]), Data(repeating: 7, count: 300), large] {
            let bytes = try encoded(data)
            #expect(bytes.count == varintSize(data.count) + data.count)
            #expect(bytes == (try encoded([UInt8](data))))
            #expect(try decoded(Data.self, from: bytes) == data)
            #expect(try decoded([UInt8].self, from: bytes) == [UInt8](data))
        }
        // A slice keeps its own indices (startIndex 100 here); only its bytes travel, and it
        // comes back with startIndex 0.
        let slice = large[100..<5_100]
        #expect(slice.startIndex == 100)
        let back = try roundTrip(slice)
        #expect(back == slice)
        #expect(back.startIndex == 0)
        #expect(try encoded(slice) == (try encoded([UInt8](slice))))
        #expect(try roundTrip(large[large.endIndex..<large.endIndex]).isEmpty)
        // In keyed fields, optionals and arrays.
        let blobs = Blobs(main: slice, maybe: Data([9, 8]), many: [Data(), large[7..<9], Data([5])])
        #expect(try roundTrip(blobs) == blobs)
        #expect(try roundTrip(Blobs(main: Data(), maybe: nil, many: [])) == Blobs(main: Data(), maybe: nil, many: []))
    }

    @Test("truncated or oversized Data is refused with decodingFailed")
    func foundationDataTruncated() throws {
        let small = try encoded(Data((0..<200).map { UInt8($0) }))
        for length in 0..<small.count {
            expectCodecError(.decodingFailed) { _ = try decoded(Data.self, from: Array(small[..<length])) }
        }
        let blobs = try encoded(Blobs(main: Data([1, 2, 3]), maybe: Data([4]), many: [Data([5, 6])]))
        for length in 0..<blobs.count {
            expectCodecError(.decodingFailed) { _ = try decoded(Blobs.self, from: Array(blobs[..<length])) }
        }
        var huge = ByteWriter()
        huge.write(varint: 1 << 62)
        huge.write(fixed: 1 as Int)
        expectCodecError(.decodingFailed) { _ = try decoded(Data.self, from: huge.bytes) }
        let large = try encoded(Data(count: 1_000_000))
        for length in [1, 3, 4, 1_000, 999_999, large.count - 1] {
            expectCodecError(.decodingFailed) { _ = try decoded(Data.self, from: Array(large[..<length])) }
        }
        var random = SeededGenerator(state: 0xB10B)
        for _ in 0..<2_000 {
            var bytes = blobs
            bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            _ = decodesOrRefuses(Blobs.self, bytes)
        }
    }

    @Test("an ArraySlice encodes the same bytes as an Array and decodes as one")
    func slices() throws {
        let values = Array(0..<1000)
        let slice = values[250..<750]
        let bytes = try encoded(slice)
        #expect(bytes == (try encoded(Array(slice))))
        #expect(try decoded([Int].self, from: bytes) == Array(slice))
        let doubles = values.map(Double.init)[10..<20]
        #expect(try encoded(doubles) == (try encoded(Array(doubles))))
        #expect(try encoded(values[0..<0]) == [0])
        // Slices of other elements go element by element, with the same bytes as an Array.
        let strings = (0..<200).map { "s\($0)" }
        #expect(try encoded(strings[5..<150]) == (try encoded(Array(strings[5..<150]))))
        #expect(try decoded([String].self, from: encoded(strings[5..<150])) == Array(strings[5..<150]))
        let points = [Point(x: 1, y: 2, name: "a"), Point(x: 3, y: 4, name: "b"), Point(x: 5, y: 6, name: "c")]
        #expect(try decoded([Point].self, from: encoded(points[1...])) == Array(points[1...]))
        let optionals: [Int?] = [1, nil, 3]
        #expect(try encoded(optionals[1...]) == (try encoded(Array(optionals[1...]))))
        #expect(try encoded(strings[0..<0]) == [0])
    }

    @Test("POD arrays inside other values")
    func podArraysNested() throws {
        struct Batch: Codable, Equatable {
            var ids: [Int]
            var weights: [Float]?
            var vectors: [[SIMD2<Double>]]
            var slices: [ContiguousArray<UInt16>]
        }
        let batch = Batch(
            ids: Array(0..<300),
            weights: [0.5, 1.5],
            vectors: [[SIMD2(1, 2)], [], [SIMD2(3, 4), SIMD2(5, 6)]],
            slices: [[1, 2, 3], []]
        )
        #expect(try roundTrip(batch) == batch)
        #expect(try roundTrip([Int]?.some([1, 2])) == [1, 2])
        #expect(try roundTrip([Int]?.none) == nil)
    }

    @Test("several values decode back to back from one reader")
    func backToBack() throws {
        var writer = ByteWriter()
        let point = Point(x: 3, y: 4, name: "back")
        try BinaryCodec.encode(point, into: &writer)
        try BinaryCodec.encode([1, 2, 3], into: &writer)
        try BinaryCodec.encode("middle", into: &writer)
        try BinaryCodec.encode(Int?.none, into: &writer)
        try BinaryCodec.encode(Shape.circle(radius: 1), into: &writer)
        try BinaryCodec.encode(true, into: &writer)
        try writer.bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            var reader = ByteReader(raw)
            #expect(try BinaryCodec.decode(Point.self, from: &reader) == point)
            #expect(try BinaryCodec.decode([Int].self, from: &reader) == [1, 2, 3])
            #expect(try BinaryCodec.decode(String.self, from: &reader) == "middle")
            #expect(try BinaryCodec.decode(Int?.self, from: &reader) == nil)
            #expect(try BinaryCodec.decode(Shape.self, from: &reader) == .circle(radius: 1))
            #expect(try BinaryCodec.decode(Bool.self, from: &reader) == true)
            #expect(reader.isAtEnd)
        }
    }

    @Test("a failed decode leaves the reader where it was")
    func failedDecodeKeepsReader() throws {
        let bytes = try encoded(Point(x: 1, y: 2, name: "z"))
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            var reader = ByteReader(raw)
            #expect(throws: MultiprocessingError.self) { try BinaryCodec.decode(Bigger.self, from: &reader) }
            #expect(reader.offset == 0)
            #expect(try BinaryCodec.decode(Point.self, from: &reader).name == "z")
        }
    }

    @Test("hand-written Codable: other decode order, nested containers, super coders")
    func handWritten() throws {
        let shuffled = Shuffled(a: 5, b: "bee", c: [1, 2], d: true)
        #expect(try roundTrip(shuffled) == shuffled)
        let hand = HandWritten(
            values: Array(0..<200),
            matrix: [[1, 2], [], [3]],
            note: nil,
            base: Point(x: 1, y: 2, name: "base")
        )
        #expect(try roundTrip(hand) == hand)
        var noted = hand
        noted.note = "note"
        noted.values = []
        #expect(try roundTrip(noted) == noted)

        let dog = try roundTrip(Dog(name: "Rex", tricks: ["sit", "roll"]))
        #expect(dog.name == "Rex")
        #expect(dog.tricks == ["sit", "roll"])
        for scores in [[:], [0: false, 1: true, 7: true, 9: false]] as [[Int: Bool]] {
            let puppy = try roundTrip(Puppy(name: "Bit", toys: ["ball"], scores: scores))
            #expect(puppy.name == "Bit")
            #expect(puppy.toys == ["ball"])
            #expect(puppy.scores == scores)
            let litter = try roundTrip([
                Puppy(name: "A", toys: [], scores: scores), Puppy(name: "B", toys: ["x"], scores: [:]),
            ])
            #expect(litter.map(\.name) == ["A", "B"])
        }
        let cat = try roundTrip(Cat(name: "Tom", lives: 9))
        #expect(cat.name == "Tom")
        #expect(cat.lives == 9)
    }

    @Test("a Drawing with everything in it round-trips")
    func everything() throws {
        let drawing = Drawing.sample
        #expect(try roundTrip(drawing) == drawing)
    }

    @Test("decodeIfPresent and a missing key")
    func missingKey() throws {
        struct Maybe: Codable, Equatable {
            var x: Int
            var y: Int?
            var z: Int?
        }
        #expect(try decoded(Maybe.self, from: encoded(Small(x: 1, y: 2))) == Maybe(x: 1, y: 2, z: nil))
        #expect(try roundTrip(Maybe(x: 1, y: nil, z: 3)) == Maybe(x: 1, y: nil, z: 3))
        let error = expectCodecError(.decodingFailed) {
            _ = try decoded(Outer.self, from: encoded(OuterSmall(inner: Small(x: 1, y: 2))))
        }
        let message = error?.message ?? ""
        #expect(message.contains("\"z\""), "\(message)")
        #expect(message.contains("inner"), "\(message)")
        #expect(message.contains("Outer"), "\(message)")
        #expect(message.contains("\"x\", \"y\""), "\(message)")
    }

    @Test("a type mismatch is an error, not garbage")
    func typeMismatch() throws {
        struct Narrow: Codable { var x: Int32; var y: Int }
        expectCodecError(.decodingFailed) { _ = try decoded(Narrow.self, from: encoded(Small(x: 1, y: 2))) }
        struct Texty: Codable { var x: String; var y: Int }
        expectCodecError(.decodingFailed) { _ = try decoded(Texty.self, from: encoded(Small(x: 1, y: 2))) }
        expectCodecError(.decodingFailed) { _ = try decoded(Color.self, from: encoded("purple")) }
    }

    @Test("errors from Codable code are wrapped with type and path")
    func wrappedErrors() throws {
        struct Holder: Codable { var items: [Throwing] }
        let encodeError = expectCodecError(.encodingFailed) { _ = try encoded(Holder(items: [Throwing()])) }
        #expect(encodeError?.message.contains("Throwing") == true, "\(encodeError?.message ?? "")")
        #expect(encodeError?.message.contains("items[0]") == true, "\(encodeError?.message ?? "")")
        #expect(encodeError?.underlying is Throwing.Failure)
        let decodeError = expectCodecError(.decodingFailed) {
            _ = try decoded([Throwing].self, from: [1, 0])
        }
        #expect(decodeError?.underlying is Throwing.Failure)
        #expect(decodeError?.message.contains("[0]") == true, "\(decodeError?.message ?? "")")
    }

    @Test("misuse of encoding containers fails instead of writing bad bytes")
    func encoderMisuse() throws {
        expectCodecError(.encodingFailed) { _ = try encoded(OutOfOrder()) }
        // A value that writes nothing takes one 0 byte, so it can sit in an array.
        #expect(try encoded(WritesNothing()) == [0])
        #expect(try encoded([WritesNothing(), WritesNothing()]) == [2, 0, 0])
        #expect(try decoded([WritesNothing].self, from: [2, 0, 0]).count == 2)
        expectCodecError(.decodingFailed) { _ = try decoded([WritesNothing].self, from: [1, 5]) }
        var writer = ByteWriter()
        try BinaryCodec.encode(7 as UInt8, into: &writer)
        #expect(throws: MultiprocessingError.self) { try BinaryCodec.encode(OutOfOrder(), into: &writer) }
        #expect(writer.bytes == [7])
    }

    @Test("nesting is limited, so deep or cyclic data cannot overflow the stack")
    func depthLimit() throws {
        var tree = Tree.leaf(0)
        for i in 0..<100 { tree = .node(tree, .leaf(i)) }
        #expect(try roundTrip(tree) == tree)
        var deep = Tree.leaf(0)
        for i in 0..<(BinaryCodec.maximumDepth * 2) { deep = .node(.leaf(i), deep) }
        expectCodecError(.encodingFailed) { _ = try encoded(deep) }
        var chain = Chain(next: [])
        for _ in 0..<100 { chain = Chain(next: [chain, Chain(next: [])]) }
        #expect(try roundTrip(chain) == chain)
        // A hand-made chain of nested arrays deeper than the limit: every byte says "one
        // element".
        let bytes = [UInt8](repeating: 1, count: 4 * BinaryCodec.maximumDepth)
        let error = expectCodecError(.decodingFailed) { _ = try decoded(Chain.self, from: bytes) }
        #expect(error?.message.contains("nested more than") == true, "\(error?.message ?? "")")
    }

    /// Runs `body` on a new thread with a stack of `stackBytes`, and returns what it returned.
    func onThread<R: Sendable>(stackBytes: Int, _ body: @escaping @Sendable () -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try OSThread.start(name: "codec-test", stackBytes: stackBytes) {
                    continuation.resume(returning: body())
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// A tree of `levels` levels: each `Tree.node` is one level of the codec.
    private func tree(levels: Int) -> Tree {
        var deep = Tree.leaf(0)
        for i in 1..<levels { deep = .node(.leaf(i), deep) }
        return deep
    }

    @Test("a value 1,024 levels deep round-trips; one more level fails, with a short path in the error")
    func deepestValue() async throws {
        #expect(BinaryCodec.maximumDepth == 1_024)
        let deepest = tree(levels: 1_024)
        let tooDeep = Tree.node(.leaf(-1), deepest)
        // On a thread with the stack the codec's threads have (8 MiB), whatever `ulimit -s` says.
        let (roundTripped, error) = try await onThread(stackBytes: 8 << 20) {
            () -> (Bool, MultiprocessingError?) in
            let roundTripped = (try? roundTrip(deepest)) == deepest
            do {
                _ = try encoded(tooDeep)
                return (roundTripped, nil)
            } catch {
                return (roundTripped, error as? MultiprocessingError)
            }
        }
        #expect(roundTripped)
        #expect(error?.code == .encodingFailed)
        let message = error?.message ?? ""
        #expect(message.contains("Tree is nested more than 1024 levels deep"), "\(message)")
        #expect(message.contains("… (2039 more levels) …"), "\(message)")
        #expect(message.count < 300, "\(message.count) characters: \(message)")
        // Decoding bytes one level deeper than the limit: the encoding of `tooDeep` made by
        // hand from that of `deepest` (one more node around it).
        let bytes = try await onThread(stackBytes: 8 << 20) { try? encoded(deepest) }
        let inner = try #require(bytes)
        let leaf = try encoded(Tree.leaf(-1))
        var writer = ByteWriter()
        writer.write(length: 1)  // one key: "node"
        writer.write(string: "node")
        let payload = [UInt8(2), 2] + Array("_0".utf8) + [UInt8(leaf.count)] + leaf + [2] + Array("_1".utf8)
        var lengths = ByteWriter()
        lengths.write(length: inner.count)
        let fields = payload + lengths.bytes + inner
        writer.write(length: fields.count)
        let deeper = writer.bytes + fields
        let decodeError = try await onThread(stackBytes: 8 << 20) { () -> MultiprocessingError? in
            do {
                _ = try decoded(Tree.self, from: deeper)
                return nil
            } catch {
                return error as? MultiprocessingError
            }
        }
        #expect(decodeError?.code == .decodingFailed)
        #expect(
            decodeError?.message.contains("nested more than 1024 levels deep") == true, "\(decodeError?.message ?? "")")
        #expect((decodeError?.message.count ?? 0) < 300)
    }

    @Test("on a thread with too little stack, a deep value fails with the depth error instead of crashing")
    func stackGuard() async throws {
        let deepest = tree(levels: 1_024)
        let bytes = try #require(try await onThread(stackBytes: 8 << 20) { try? encoded(deepest) })
        let (encodeError, decodeError) = try await onThread(stackBytes: 512 << 10) {
            () -> (MultiprocessingError?, MultiprocessingError?) in
            var errors: (MultiprocessingError?, MultiprocessingError?) = (nil, nil)
            do { _ = try encoded(deepest) } catch { errors.0 = error as? MultiprocessingError }
            do { _ = try decoded(Tree.self, from: bytes) } catch { errors.1 = error as? MultiprocessingError }
            return errors
        }
        #expect(encodeError?.code == .encodingFailed)
        #expect(
            encodeError?.message.contains("more than this thread's stack holds") == true,
            "\(encodeError?.message ?? "")")
        #expect(decodeError?.code == .decodingFailed)
        #expect(
            decodeError?.message.contains("more than this thread's stack holds") == true,
            "\(decodeError?.message ?? "")")
    }

    @Test("a long coding path is cut to its first and last keys")
    func longPaths() {
        let keys: [any CodingKey] = (0..<2_000).map { BinaryCodingKey(index: $0) }
        #expect(BinaryCodec.describe(keys) == "[0][1][2][3] … (1992 more levels) … [1996][1997][1998][1999]")
        #expect(BinaryCodec.describe(Array(keys.prefix(12))) == (0..<12).map { "[\($0)]" }.joined())
        #expect(BinaryCodec.describe(Array(keys.prefix(13))) == "[0][1][2][3] … (5 more levels) … [9][10][11][12]")
    }

    @Test("every truncation of a valid encoding throws decodingFailed")
    func truncation() throws {
        let bytes = try encoded(Drawing.sample)
        #expect(bytes.count > 100)
        for length in 0..<bytes.count {
            expectCodecError(.decodingFailed) { _ = try decoded(Drawing.self, from: Array(bytes[..<length])) }
        }
        let line = try encoded(Line.sample)
        for length in 0..<line.count {
            expectCodecError(.decodingFailed) { _ = try decoded(Line.self, from: Array(line[..<length])) }
        }
    }

    @Test("huge counts and lengths are rejected before anything is allocated")
    func hugeCounts() throws {
        var writer = ByteWriter()
        writer.write(varint: 1 << 62)
        writer.write(fixed: 1 as Int)
        let huge = writer.bytes
        expectCodecError(.decodingFailed) { _ = try decoded([Int].self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded([UInt8].self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded([String].self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded([Point].self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded([String: Int].self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded(Point.self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded(String.self, from: huge) }
        expectCodecError(.decodingFailed) { _ = try decoded(Set<Int>.self, from: huge) }
        var maxed = ByteWriter()
        maxed.write(varint: .max)
        expectCodecError(.decodingFailed) { _ = try decoded([Double].self, from: maxed.bytes) }
        expectCodecError(.decodingFailed) {
            _ = try decoded([Int].self, from: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        }
        // A count that fits the bytes left, but whose elements are not all there.
        expectCodecError(.decodingFailed) { _ = try decoded([Int].self, from: [2] + [UInt8](repeating: 0, count: 15)) }
    }

    /// Decodes `bytes`, or is refused with the library's decoding error: any other error
    /// (or code) is a defect. Returns whether it decoded.
    func decodesOrRefuses<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Bool {
        do {
            _ = try decoded(type, from: bytes)
            return true
        } catch let error as MultiprocessingError {
            #expect(error.code == .decodingFailed, "\(T.self) from \(bytes): \(error)")
            return false
        } catch {
            Issue.record("\(T.self) from \(bytes) threw a foreign error: \(error)")
            return false
        }
    }

    @Test("random garbage throws the decoding error or decodes, and never crashes")
    func garbage() throws {
        var random = SeededGenerator(state: 0x5EED)
        var decodedCount = 0
        for _ in 0..<10_000 {
            let length = Int.random(in: 0..<64, using: &random)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if decodesOrRefuses(Drawing.self, bytes) { decodedCount += 1 }
            if decodesOrRefuses([Shape].self, bytes) { decodedCount += 1 }
            _ = decodesOrRefuses(Optionals.self, bytes)
            _ = decodesOrRefuses([String: [Int?]].self, bytes)
            _ = decodesOrRefuses(Tree.self, bytes)
        }
        // Corrupt valid encodings, which reach much deeper than pure noise does.
        let valid = try encoded(Drawing.sample)
        for _ in 0..<2_000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes[index] = UInt8.random(in: 0...255, using: &random)
            }
            if decodesOrRefuses(Drawing.self, bytes) { decodedCount += 1 }
        }
        // A byte changed inside a number still decodes: the decoder does not refuse everything.
        #expect(decodedCount > 0)
    }

    @Test("containers cannot be used after their decode has finished")
    func staleContainers() throws {
        final class Escaper: Decodable, @unchecked Sendable {
            nonisolated(unsafe) static var kept: KeyedDecodingContainer<CodingKeys>?
            enum CodingKeys: String, CodingKey { case x }
            init(from decoder: any Decoder) throws {
                Escaper.kept = try decoder.container(keyedBy: CodingKeys.self)
            }
        }
        _ = try decoded(Escaper.self, from: encoded(["x": 1]))
        let kept = try #require(Escaper.kept)
        expectCodecError(.decodingFailed) { _ = try kept.decode(Int.self, forKey: .x) }
        #expect(kept.allKeys.isEmpty)
        Escaper.kept = nil
    }
}

extension Line {
    fileprivate static let sample = Line(
        from: Point(x: 1, y: 2, name: "from"),
        to: Point(x: -3, y: 4.5, name: "to"),
        tags: ["a", "", "ccc"],
        weight: nil
    )
}

extension Drawing {
    fileprivate static let sample = Drawing(
        title: "sketch ✏️",
        lines: [
            Line.sample, Line(from: Point(x: 0, y: 0, name: ""), to: Point(x: 9, y: 9, name: "9"), tags: [], weight: 2),
        ],
        origin: Point(x: 0, y: 0, name: "origin"),
        counts: ["a": 1, "b": 2],
        shape: .polygon([Point(x: 1, y: 1, name: "v")], closed: false),
        flags: [true, false],
        samples: [0.5, 1.5, 2.5]
    )
}
