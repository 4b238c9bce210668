import Foundation
import Testing

@testable import Multiprocessing

/// Random, mutated and hostile bytes thrown at everything that reads bytes from a peer: the
/// frame assembler, the message headers, the binary codec, itemized runs and result bodies.
/// Each reader either reads its input or refuses it with a ``MultiprocessingError`` of the
/// codes it documents; none may crash, hang or allocate out of proportion to its input;
/// well-formed input reads back as it was written. Seeded: every run sees the same bytes.
@Suite("Wire fuzzing", .timeLimit(.minutes(2)))
struct WireFuzzTests {
    typealias Code = MultiprocessingError.Code

    struct Sample: Codable, Equatable {
        var name: String
        var values: [Double]
        var nested: [Int: [String?]]
        var flag: Bool?
    }

    /// What a reader may refuse input with: a frame's header is a connection error
    /// (malformed, another protocol, too large); a message header or a run of items is a
    /// malformed frame, or data that ends early; a value is a decoding error.
    static let frameCodes: Set<Code> = [.malformedFrame, .protocolMismatch, .frameTooLarge]
    static let messageCodes: Set<Code> = [.malformedFrame, .decodingFailed]
    static let valueCodes: Set<Code> = [.decodingFailed]

    /// The inputs a reader refused with a code it must not use, or with another error type.
    final class Verdicts: @unchecked Sendable {
        var wrong: [String] = []
        var refused = 0
        var read = 0

        /// Runs `body`: a value, or a refusal whose code must be in `codes`.
        @discardableResult
        func check<T>(_ what: String, _ codes: Set<Code>, _ body: () throws -> T) -> T? {
            do {
                let value = try body()
                read += 1
                return value
            } catch let error as MultiprocessingError {
                refused += 1
                if !codes.contains(error.code) { wrong.append("\(what): \(error.code): \(error.message)") }
            } catch {
                refused += 1
                wrong.append("\(what): \(type(of: error)), not a MultiprocessingError: \(error)")
            }
            return nil
        }
    }

    /// The peak virtual memory of this process, in bytes (`VmPeak`): an allocation the size
    /// of a corrupt count would show here even if its pages were never touched.
    static func peakVirtualMemory() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmPeak:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }

    /// Allocating more than this while reading a few hundred bytes is a count trusted
    /// before it was checked (the hostile counts below would take 4 GiB or more).
    static let allocationBound = 1 << 30

    static let sample = Sample(name: "fuzz", values: [1.5, -2, .pi], nested: [3: ["a", nil]], flag: true)

    /// Valid frames of every kind the parent or a worker reads, to mutate.
    func seeds() throws -> [[UInt8]] {
        let sample = Self.sample
        var seeds: [[UInt8]] = []
        seeds.append(try Message.Hello(buildID: [1, 2, 3, 4], pid: 42, host: "node1").frame())
        seeds.append(
            try Frame.encode(.install) { w throws in
                Message.Install(callID: 7, typeName: "4main6SquareV").write(to: &w)
                try BinaryCodec.encode(sample, into: &w)
            })
        seeds.append(
            try TaskFrame(task: Message.Task(callID: 1, chunkID: 2, firstIndex: 10, count: 3)) { w in
                try BinaryCodec.encode([sample, sample, sample], into: &w)
            }.bytes)
        let task = Message.Task(callID: 1, chunkID: 2, firstIndex: 0, count: 100)
        seeds.append(
            ResultBody.allSucceeded(Array(0..<100), task: task, computeNanos: 99, times: nil, maximumPayload: 1 << 20)!
                .bytes)
        var itemized = ResultBody.ItemizedWriter(task: task, computeNanos: 5, times: nil, maximumPayload: 1 << 20)
        for offset in 0..<100 {
            if offset == 7 {
                itemized.appendFailure(MultiprocessingError(.workerDied, "gone"))
            } else {
                itemized.append(offset, index: offset)
            }
        }
        seeds.append(itemized.finish().bytes)
        seeds.append(try Message.Failure(callID: 3, code: "x", message: "y").frame(.installFailed))
        return seeds
    }

    /// Reads `bytes` as a peer's stream: frames, then each payload as every message it could be.
    func consume(_ bytes: [UInt8], _ verdicts: Verdicts, direct: Bool = false) {
        var assembler = FrameAssembler(maximumPayload: 1 << 20, readsLargeFramesDirectly: direct)
        bytes.withUnsafeBytes { assembler.append($0) }
        while let frame = verdicts.check("a frame", Self.frameCodes, { try assembler.next() }) ?? nil {
            frame.payload.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                verdicts.check("hello", Self.messageCodes) { try Message.Hello(&r) }
                r = ByteReader(raw)
                if verdicts.check("install", Self.messageCodes, { try Message.Install(&r) }) != nil {
                    verdicts.check("a function value", Self.valueCodes) {
                        try BinaryCodec.decode(Sample.self, from: &r)
                    }
                }
                r = ByteReader(raw)
                if let task = verdicts.check("task", Self.messageCodes, { try Message.Task(&r) }) {
                    var copy = r
                    verdicts.check("raw inputs", Self.valueCodes) { try BinaryCodec.decode([Sample].self, from: &r) }
                    if let table = verdicts.check(
                        "itemized inputs", Self.messageCodes, { try ItemizedValues.Table(&copy, count: task.count) })
                    {
                        for index in table.entries.indices {
                            verdicts.check("an input", Self.messageCodes) {
                                try table.decode(Sample.self, at: index, in: raw)
                            }
                        }
                    }
                }
                r = ByteReader(raw)
                if let header = verdicts.check("result", Self.messageCodes, { try Message.Result(&r) }) {
                    let chunk: ResultChunk<Int> = ResultBody.read(header, 0..<100, frame.payload, r.offset, worker)
                    if case .failed(_, let error) = chunk {
                        verdicts.check("a result body", Self.messageCodes) { throw error }
                    }
                }
                r = ByteReader(raw)
                verdicts.check("installFailed", Self.messageCodes) { try Message.Failure(&r, kind: .installFailed) }
                r = ByteReader(raw)
                verdicts.check("a dictionary", Self.valueCodes) {
                    try BinaryCodec.decode([String: [Int?]].self, from: &r)
                }
            }
        }
    }

    let worker = MultiprocessingError.WorkerIdentity(slot: 0, pid: 1, host: "fuzz")

    @Test(
        "random bytes and mutated valid frames are read or refused with a documented code (10,000 cases, at most 10 s)")
    func fuzz() throws {
        var random = SeededGenerator(state: 20_261_125)
        let seeds = try seeds()
        let verdicts = Verdicts()
        let peakBefore = Self.peakVirtualMemory()
        for seed in seeds { consume(seed, verdicts) }
        #expect(verdicts.wrong.isEmpty, "the valid seeds: \(verdicts.wrong.prefix(5))")
        let deadline = ContinuousClock.now + .seconds(10)
        var cases = 0
        while cases < 10_000 && ContinuousClock.now < deadline {
            cases += 1
            var bytes: [UInt8]
            if cases % 4 == 0 {
                bytes = (0..<Int.random(in: 0..<64, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
                if cases % 8 == 0 { bytes = [0x4D, 0x50, Frame.protocolVersion] + bytes }  // past the magic
            } else {
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &random)]
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0 where !bytes.isEmpty:  // flip a byte
                        bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(
                            in: 0...255, using: &random)
                    case 1 where !bytes.isEmpty:  // truncate
                        bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
                    case 2:  // insert garbage
                        let at = Int.random(in: 0...bytes.count, using: &random)
                        bytes.insert(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF, 0x7F], at: at)
                    default:  // duplicate a piece
                        if bytes.count > 2 {
                            let start = Int.random(in: 0..<(bytes.count - 1), using: &random)
                            bytes += bytes[start..<bytes.count]
                        }
                    }
                }
            }
            consume(bytes, verdicts, direct: cases % 2 == 0)
        }
        #expect(cases > 1000, "the fuzzer ran only \(cases) cases in its time budget")
        #expect(verdicts.wrong.isEmpty, "\(verdicts.wrong.count) inputs refused wrongly: \(verdicts.wrong.prefix(5))")
        #expect(
            verdicts.refused > cases / 2 && verdicts.read > cases / 10,
            "read \(verdicts.read), refused \(verdicts.refused)")
        let grew = Self.peakVirtualMemory() - peakBefore
        #expect(grew < Self.allocationBound, "reading \(cases) small inputs took the peak memory up \(grew >> 20) MiB")
    }

    /// A varint's bytes.
    static func varint(_ value: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.write(varint: value)
        return w.bytes
    }

    /// A frame of `kind` around `payload` (the header as a peer could write it).
    static func frame(_ kind: UInt8, _ payload: [UInt8], version: UInt8 = Frame.protocolVersion) -> [UInt8] {
        var w = ByteWriter()
        w.write(0x4D)
        w.write(0x50)
        w.write(version)
        w.write(kind)
        w.write(fixed: UInt32(payload.count))
        return w.bytes + payload
    }

    /// One hostile input, what reads it, and the code it must be refused with.
    struct Hostile: CustomTestStringConvertible, Sendable {
        let name: String
        let code: Code
        let read: @Sendable () throws -> Void
        var testDescription: String { name }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> @Sendable () throws -> Void {
        {
            try bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                _ = try BinaryCodec.decode(T.self, from: &reader)
            }
        }
    }

    static func message(_ bytes: [UInt8], _ read: @escaping @Sendable (inout ByteReader) throws -> Void)
        -> @Sendable () throws -> Void
    {
        {
            try bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                try read(&reader)
            }
        }
    }

    static func assemble(_ bytes: [UInt8], direct: Bool) -> @Sendable () throws -> Void {
        {
            var assembler = FrameAssembler(maximumPayload: 1 << 20, readsLargeFramesDirectly: direct)
            bytes.withUnsafeBytes { assembler.append($0) }
            while try assembler.next() != nil {}
        }
    }

    static func resultBody(_ status: UInt8, _ body: [UInt8], items: Int) -> @Sendable () throws -> Void {
        {
            var w = ByteWriter()
            Message.Result(callID: 1, chunkID: 1, computeNanos: 0, status: status).write(to: &w)
            let offset = w.count
            let payload = w.bytes + body
            let worker = MultiprocessingError.WorkerIdentity(slot: 0, pid: 1, host: "fuzz")
            let header = try payload.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                return try Message.Result(&reader)
            }
            let chunk: ResultChunk<String> = ResultBody.read(header, 0..<items, payload, offset, worker)
            if case .failed(_, let error) = chunk { throw error }
        }
    }

    /// Counts of 2^29 and more with a few bytes behind them: trusted, each would allocate
    /// 4 GiB or more (or trap); checked, each is refused before anything is allocated.
    static let hostile: [Hostile] = {
        let huge = varint(1 << 29)
        let enormous = varint(1 << 62)
        let few: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        return [
            Hostile(
                name: "a frame longer than the limit", code: .frameTooLarge,
                read: assemble(frame(4, []).prefix(4) + [0xFF, 0xFF, 0xFF, 0xFF] + few, direct: false)),
            Hostile(
                name: "a frame longer than the limit, read directly", code: .frameTooLarge,
                read: assemble(Array(frame(3, []).prefix(4)) + [0xFF, 0xFF, 0xFF, 0xFF] + few, direct: true)),
            Hostile(
                name: "bad magic", code: .malformedFrame,
                read: assemble([0x4E, 0x50] + frame(4, few).dropFirst(2), direct: false)),
            Hostile(
                name: "another protocol version", code: .protocolMismatch,
                read: assemble(frame(4, few, version: Frame.protocolVersion &+ 1), direct: false)),
            Hostile(name: "an unknown kind", code: .malformedFrame, read: assemble(frame(200, few), direct: false)),
            Hostile(name: "an array count", code: .decodingFailed, read: decode([String].self, huge + few)),
            Hostile(
                name: "an enormous array count", code: .decodingFailed, read: decode([Sample].self, enormous + few)),
            Hostile(name: "a POD array count", code: .decodingFailed, read: decode([Int].self, huge + few)),
            Hostile(
                name: "an enormous POD array count", code: .decodingFailed,
                read: decode([SIMD4<Double>].self, enormous + few)),
            Hostile(name: "a string length", code: .decodingFailed, read: decode(String.self, huge + few)),
            Hostile(
                name: "a keyed container's field count", code: .decodingFailed, read: decode(Sample.self, huge + few)),
            Hostile(name: "a dictionary's count", code: .decodingFailed, read: decode([Int: Int].self, huge + few)),
            Hostile(
                name: "a String-keyed dictionary's count", code: .decodingFailed,
                read: decode([String: Int].self, huge + few)),
            Hostile(
                name: "a varint longer than 64 bits", code: .decodingFailed,
                read: decode([Int8].self, [UInt8](repeating: 0xFF, count: 11))),
            Hostile(name: "a Bool that is neither 0 nor 1", code: .decodingFailed, read: decode(Bool.self, [2])),
            Hostile(
                name: "a task's run past its count", code: .malformedFrame,
                read: message(varint(1) + varint(1) + varint(0) + varint(3) + varint(0) + varint(4)) {
                    _ = try Message.Task(&$0)
                }),
            Hostile(
                name: "a task's count", code: .malformedFrame,
                read: message(varint(1) + varint(1) + varint(0) + varint(1 << 40) + varint(0) + varint(1)) {
                    _ = try Message.Task(&$0)
                }),
            Hostile(
                name: "a result's unknown status", code: .malformedFrame,
                read: message(varint(1) + varint(1) + varint(0) + [7] + [0, 0, 0, 0]) { _ = try Message.Result(&$0) }),
            Hostile(
                name: "a run's byte count", code: .malformedFrame,
                read: message([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] + few) {
                    _ = try ItemizedValues.Table(&$0, count: 1)
                }),
            Hostile(
                name: "a run's item count", code: .decodingFailed,
                read: message([0, 0, 0, 0, 0, 0, 0, 0]) { _ = try ItemizedValues.Table(&$0, count: 1 << 29) }),
            Hostile(
                name: "an item's value length", code: .malformedFrame,
                read: message([1, 0, 0, 0, 0, 0, 0, 0, 9] + [0] + huge) { _ = try ItemizedValues.Table(&$0, count: 1) }),
            Hostile(
                name: "an item's unknown tag", code: .malformedFrame,
                read: message([0, 0, 0, 0, 0, 0, 0, 0, 9]) { _ = try ItemizedValues.Table(&$0, count: 1) }),
            Hostile(
                name: "an item's error text", code: .decodingFailed,
                read: message([0, 0, 0, 0, 0, 0, 0, 0, 1] + huge + few) { _ = try ItemizedValues.Table(&$0, count: 1) }),
            Hostile(
                name: "a result body with fewer outputs than items", code: .malformedFrame,
                read: resultBody(Message.Result.allSucceeded, varint(1) + varint(1) + [65], items: 2)),
            Hostile(
                name: "a result body's output count", code: .decodingFailed,
                read: resultBody(Message.Result.allSucceeded, huge + few, items: 2)),
            Hostile(
                name: "a result body's run", code: .malformedFrame,
                read: resultBody(
                    Message.Result.perItem, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] + few, items: 2)),
        ]
    }()

    @Test(
        "a hostile count, length or header is refused with its code, before anything is allocated", arguments: hostile)
    func refused(_ input: Hostile) {
        let peakBefore = Self.peakVirtualMemory()
        do {
            try input.read()
            Issue.record("\(input.name) was read, not refused")
        } catch let error as MultiprocessingError {
            #expect(error.code == input.code, "\(input.name): \(error.message)")
        } catch {
            Issue.record("\(input.name) threw \(type(of: error)), not a MultiprocessingError: \(error)")
        }
        let grew = Self.peakVirtualMemory() - peakBefore
        #expect(grew < Self.allocationBound, "\(input.name) took the peak memory up \(grew >> 20) MiB")
    }

    @Test("well-formed frames, values and result bodies read back as they were written (seeded)")
    func roundTrip() throws {
        var random = SeededGenerator(state: 7)
        func text() -> String {
            String((0..<Int.random(in: 0..<12, using: &random)).map { _ in "aé€𝄞 z".randomElement(using: &random)! })
        }
        for _ in 0..<300 {
            let sample = Sample(
                name: text(),
                values: (0..<Int.random(in: 0..<20, using: &random)).map { _ in
                    Double.random(in: -1e9...1e9, using: &random)
                },
                nested: Dictionary(
                    uniqueKeysWithValues: (0..<Int.random(in: 0..<4, using: &random)).map { key in
                        (
                            key,
                            (0..<Int.random(in: 0..<3, using: &random)).map { _ in
                                Bool.random(using: &random) ? text() : nil
                            }
                        )
                    }),
                flag: [true, false, nil].randomElement(using: &random)!)
            let task = Message.Task(callID: random.next() >> 1, chunkID: random.next() >> 1, firstIndex: 3, count: 2)
            let bytes = try TaskFrame(task: task) { w in try BinaryCodec.encode([sample, sample], into: &w) }.bytes
            var assembler = FrameAssembler(maximumPayload: 1 << 20)
            // In pieces, as a socket delivers them.
            let cut = Int.random(in: 0...bytes.count, using: &random)
            bytes[..<cut].withUnsafeBytes { assembler.append($0) }
            bytes[cut...].withUnsafeBytes { assembler.append($0) }
            let frame = try #require(try assembler.next())
            #expect(frame.kind == .task)
            try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                #expect(try Message.Task(&reader) == task)
                #expect(try BinaryCodec.decode([Sample].self, from: &reader) == [sample, sample])
                #expect(reader.isAtEnd)
            }
            let numbers = (0..<Int.random(in: 0..<50, using: &random)).map { _ in
                Int.random(in: .min ... .max, using: &random)
            }
            let encoded = try { () throws(MultiprocessingError) -> [UInt8] in
                var w = ByteWriter()
                try BinaryCodec.encode(numbers, into: &w)
                return w.bytes
            }()
            try encoded.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                #expect(try BinaryCodec.decode([Int].self, from: &reader) == numbers)
            }
        }
    }

    @Test("a result body reads back as written: raw outputs, and items that succeeded, threw or failed")
    func resultBodyRoundTrip() throws {
        let task = Message.Task(callID: 4, chunkID: 9, firstIndex: 20, count: 6, run: 1..<5)
        let times = Message.Result.Times(start: 11, end: 0)
        var raw = try #require(
            ResultBody.allSucceeded(
                [10, 11, 12, 13], task: task, computeNanos: 77, times: times, maximumPayload: 1 << 20))
        raw.stampEnd(1234)
        let (header, offset) = try raw.bytes.dropFirst(Frame.headerSize).withUnsafeBytes { bytes in
            var reader = ByteReader(bytes)
            return (try Message.Result(&reader), reader.offset)
        }
        #expect(header.status == Message.Result.allSucceeded && header.computeNanos == 77 && header.failedCount == 0)
        #expect(header.times == Message.Result.Times(start: 11, end: 1234))
        let payload = Array(raw.bytes.dropFirst(Frame.headerSize))
        guard
            case .values(21, [10, 11, 12, 13]) = ResultBody.read(header, 21..<25, payload, offset, worker)
                as ResultChunk<Int>
        else {
            Issue.record("raw outputs did not read back")
            return
        }

        var body = ResultBody.ItemizedWriter(task: task, computeNanos: 5, times: nil, maximumPayload: 1 << 20)
        body.append("one", index: 21)
        body.appendThrew(_ItemFailure(offset: 2, error: CocoaError(.fileNoSuchFile)))
        body.appendFailure(MultiprocessingError(.decodingFailed, "bad input"))
        body.append("four", index: 24)
        let itemized = body.finish()
        #expect(itemized.endAt == 0)
        let itemizedPayload = Array(itemized.bytes.dropFirst(Frame.headerSize))
        let (itemizedHeader, itemizedOffset) = try itemizedPayload.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes)
            return (try Message.Result(&reader), reader.offset)
        }
        #expect(itemizedHeader.status == Message.Result.perItem && itemizedHeader.failedCount == 2)
        let chunk: ResultChunk<String> = ResultBody.read(
            itemizedHeader, 21..<25, itemizedPayload, itemizedOffset, worker)
        guard case .mixed(21, let outcomes) = chunk, outcomes.count == 4 else {
            Issue.record("itemized outcomes did not read back: \(chunk)")
            return
        }
        #expect(try outcomes[0].get() == "one")
        #expect(try outcomes[3].get() == "four")
        #expect(throws: MultiprocessingError.self) { try outcomes[1].get() }
        if case .failure(let threw) = outcomes[1] {
            #expect(threw.code == .functionThrew && threw.itemIndex == 22 && threw.worker == worker)
            #expect(threw.remoteErrorType?.contains("CocoaError") == true)
        }
        if case .failure(let failed) = outcomes[2] {
            #expect(failed.code == .decodingFailed && failed.itemIndex == 23)
            #expect(failed.message.hasSuffix("bad input"))
        }

        let all = ResultBody.failAll(task, MultiprocessingError(.typeNotFound, "no such type"))
        let allPayload = Array(all.dropFirst(Frame.headerSize))
        let (allHeader, allOffset) = try allPayload.withUnsafeBytes { bytes in
            var reader = ByteReader(bytes)
            return (try Message.Result(&reader), reader.offset)
        }
        #expect(allHeader.failedCount == 4)
        let failed: ResultChunk<String> = ResultBody.read(allHeader, 21..<25, allPayload, allOffset, worker)
        guard case .mixed(21, let every) = failed else {
            Issue.record("failAll did not read back: \(failed)")
            return
        }
        #expect(every.allSatisfy { if case .failure(let e) = $0 { e.code == .typeNotFound } else { false } })
    }
}
