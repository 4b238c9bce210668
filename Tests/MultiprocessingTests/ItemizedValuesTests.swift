import Testing

@testable import Multiprocessing

/// The layout of a run of values encoded one by one (task inputs and result outcomes).
@Suite("Itemized values")
struct ItemizedValuesTests {
    struct Refusing: Codable, Equatable {
        var value: Int
        struct Refused: Error {}
        func encode(to encoder: any Encoder) throws {
            if value == 2 { throw Refused() }
            var c = encoder.singleValueContainer()
            try c.encode(value)
        }
    }

    /// Encodes `values` (a value that cannot be encoded becomes an encodingFailed entry).
    func encode(_ values: [Refusing], threwAt: Int? = nil) -> [UInt8] {
        var w = ByteWriter()
        var items = ItemizedValues.Writer(&w)
        for (index, value) in values.enumerated() {
            if index == threwAt {
                items.appendThrew(type: "E", message: "boom")
            } else if case .unencodable(let error) = items.append(value, into: &w, limit: .max) {
                items.appendFailure(MultiprocessingError(.encodingFailed, error.message))
            }
        }
        items.finish(into: &w)
        return w.bytes
    }

    @Test("each item decodes alone; a value that could not be encoded, and one that threw, keep their place")
    func roundTrip() throws {
        let bytes = encode(
            [Refusing(value: 0), Refusing(value: 1), Refusing(value: 2), Refusing(value: 3)], threwAt: 1)
        try bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let table = try ItemizedValues.Table(&reader, count: 4)
            #expect(try table.decode(Int.self, at: 0, in: raw) == 0)
            #expect(table.entries[1] == .threw(type: "E", message: "boom"))
            guard case .failed(let code, _) = table.entries[2] else {
                Issue.record("item 2 should have failed: \(table.entries[2])")
                return
            }
            #expect(code == MultiprocessingError.Code.encodingFailed.description)
            #expect(try table.decode(Int.self, at: 3, in: raw) == 3)
            #expect(throws: MultiprocessingError.self) { try table.decode(Int.self, at: 2, in: raw) }
        }
    }

    @Test("a truncated or corrupted run is an error for the frame, never a crash", arguments: [0, 1, 5, 9, 12])
    func corrupt(cut: Int) throws {
        let bytes = encode((0..<5).map { Refusing(value: $0 == 2 ? 7 : $0) })
        let truncated = Array(bytes.dropLast(cut + 1))
        truncated.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            #expect(throws: MultiprocessingError.self) { _ = try ItemizedValues.Table(&reader, count: 5) }
        }
        // Random byte flips: read or refused, never a trap.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var mutated = bytes
            mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            mutated.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                if let table = try? ItemizedValues.Table(&reader, count: 5) {
                    for index in 0..<5 { _ = try? table.decode(Int.self, at: index, in: raw) }
                }
            }
        }
    }

    @Test("a value that would pass the frame limit is not written: too large alone, or only together with the others")
    func limit() throws {
        let limit = ItemizedValues.frameHeadroom + 100
        var w = ByteWriter()
        var items = ItemizedValues.Writer(&w)
        let big = [UInt8](repeating: 1, count: 60)
        guard case .value = items.append(big, into: &w, limit: limit) else {
            Issue.record("the first value fits")
            return
        }
        let before = w.count
        guard case .tooLarge(_, alone: false) = items.append(big, into: &w, limit: limit) else {
            Issue.record("two values of 60 bytes pass a limit of 100 together only")
            return
        }
        guard
            case .tooLarge(let bytes, alone: true) = items.append(
                [UInt8](repeating: 1, count: 200), into: &w, limit: limit)
        else {
            Issue.record("a value of 200 bytes passes a limit of 100 alone")
            return
        }
        #expect(bytes > 200)
        #expect(w.count == before, "nothing is written for a value that does not fit")
        items.finish(into: &w)
        try w.bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            let table = try ItemizedValues.Table(&reader, count: 1)
            #expect(try table.decode([UInt8].self, at: 0, in: raw) == big)
        }
    }

    @Test("raw-byte types are told apart from item-by-item ones")
    func raw() {
        #expect(ItemizedValues.isRaw(Int.self))
        #expect(ItemizedValues.isRaw(Double.self))
        #expect(!ItemizedValues.isRaw(String.self))
        #expect(!ItemizedValues.isRaw([UInt8].self))
    }
}
