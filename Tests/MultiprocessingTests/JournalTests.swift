import Foundation
import Testing

@testable import Multiprocessing

/// The journal's record format, without processes.
@Suite("Journal format")
struct JournalFormatTests {
    func journalBytes() -> [UInt8] {
        var bytes = JournalRecord.headerFrame
        let identity = JournalIdentity(functionType: "F", stateHash: 7, outputType: "Int", buildID: [1, 2])
        bytes += JournalRecord.frame(
            JournalRecord.callPayload(
                JournalCallInfo(key: 1, ordinal: 0, name: "map", identity: identity, itemCount: 3)))
        for index in 0..<3 {
            var w = JournalRecord.resultsPayloadHead(
                callKey: 1, indices: .contiguous(index..<(index + 1)), hashes: [UInt64(index)], status: 0, extra: 16)
            try! BinaryCodec.encode([index * index], into: &w)
            bytes += JournalRecord.frame(w.bytes)
        }
        return bytes
    }

    @Test("XXH64 of the empty input is the reference value")
    func hashVector() {
        #expect(JournalHash.hash([]) == 0xEF46_DB37_51D8_E999)
    }

    @Test("the 8-byte fast path hashes as the general XXH64 does (journals written before it still match)")
    func hash8() {
        var generator = SystemRandomNumberGenerator()
        for value in [0, 1, UInt64.max, 0x0123_4567_89AB_CDEF] + (0..<1000).map({ _ in generator.next() as UInt64 }) {
            let general = withUnsafeBytes(of: value.littleEndian) { JournalHash.hash($0) }
            #expect(JournalHash.hash8(value) == general, "\(value)")
        }
        var hasher = InputHasher<Int>()
        var hashes: [UInt64] = []
        hasher.hash([5, -7, 1 << 40][...], into: &hashes)
        #expect(hashes == [5, -7, 1 << 40].map { try! hasher.hash($0) }, "the chunk path and the one-item path agree")
    }

    @Test("arrays of numbers are hashed from their memory: a changed element or length is a changed input")
    func podArrayHash() throws {
        var bytes = InputHasher<[UInt8]>()
        let base = try bytes.hash([1, 2, 3])
        #expect(try bytes.hash([1, 2, 3]) == base)
        #expect(try bytes.hash([1, 2, 4]) != base)
        #expect(try bytes.hash([1, 2, 3, 0]) != base)
        var doubles = InputHasher<[Double]>()
        #expect(try doubles.hash([0.5, .nan]) == doubles.hash([0.5, .nan]), "the same bits, the same hash")
        #expect(try doubles.hash([0.5]) != doubles.hash([0.25]))
        var chunk: [UInt64] = []
        bytes.hash([[1, 2, 3], [9]][...], into: &chunk)
        #expect(chunk == [base, try bytes.hash([9])], "the chunk path and the one-item path agree")
    }

    @Test("a whole journal scans to its records, and a lookup finds every item")
    func wholeJournal() throws {
        let bytes = journalBytes()
        let scan = try bytes.withUnsafeBytes { try JournalScan.scan($0, path: "j") }
        #expect(scan.records.count == 5)
        #expect(scan.droppedBytes == 0)
        let contents = JournalContents(bytes: bytes, scan: scan)
        let identity = JournalIdentity(functionType: "F", stateHash: 7, outputType: "Int", buildID: [1, 2])
        let lookup = contents.lookup(identity, anyBuild: false, as: Int.self)
        #expect((0..<3).map { lookup.output(at: $0, hash: UInt64($0)) } == [0, 1, 4])
        #expect(lookup.output(at: 1, hash: 99) == nil, "a changed input is not served")
        var other = identity
        other.buildID = [9]
        #expect(contents.lookup(other, anyBuild: false, as: Int.self).outputs.isEmpty)
        #expect(contents.lookup(other, anyBuild: true, as: Int.self).outputs.count == 3)
        other.stateHash = 8
        #expect(contents.lookup(other, anyBuild: true, as: Int.self).mismatch == "the function's state changed")
    }

    @Test("a tail cut at any byte drops exactly the torn record")
    func tornTail() throws {
        let bytes = journalBytes()
        let whole = try bytes.withUnsafeBytes { try JournalScan.scan($0, path: "j") }
        for cut in 1..<(bytes.count - JournalRecord.headerFrame.count) {
            let torn = Array(bytes.dropLast(cut))
            let scan = try torn.withUnsafeBytes { try JournalScan.scan($0, path: "j") }
            #expect(scan.validLength + scan.droppedBytes == torn.count)
            #expect(scan.records.count < whole.records.count)
            #expect(whole.records.starts(with: scan.records))
        }
    }

    @Test("a flipped bit in any record after the header stops the scan there; never a crash")
    func corruption() throws {
        let bytes = journalBytes()
        let header = JournalRecord.headerFrame.count
        for position in header..<bytes.count {
            var damaged = bytes
            damaged[position] ^= 0x10
            let scan = try damaged.withUnsafeBytes { try JournalScan.scan($0, path: "j") }
            #expect(scan.validLength <= position)
        }
    }

    @Test("random bytes are refused as not a journal, and random tails never crash the scan")
    func garbage() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<300, using: &generator)
            let noise = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let asFile = noise.withUnsafeBytes { try? JournalScan.scan($0, path: "j") }
            if let asFile { #expect(asFile.records.isEmpty && noise.count < JournalRecord.headerFrame.count) }
            let tail = journalBytes() + noise
            let scan = tail.withUnsafeBytes { try? JournalScan.scan($0, path: "j") }
            #expect(scan != nil && scan!.records.count >= 5)
        }
    }

    @Test("a file that is not a journal is refused and not truncated")
    func notAJournal() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("notjournal-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = Array("some data the user cares about, longer than a header record\n".utf8)
        _ = FileManager.default.createFile(atPath: path, contents: Data(text))
        #expect(throws: MultiprocessingError.self) { _ = try Journal(path: path, syncIntervalNanos: 1_000_000_000) }
        #expect(FileManager.default.contents(atPath: path) == Data(text))
    }
}

/// Durable maps on real processes (the `journal-run` fixture scenario).
@Suite("Durable maps (real processes)", .timeLimit(.minutes(5)))
struct JournalProcessTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mp-journal-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    var journal: String { directory.appendingPathComponent("journal").path }
    var counts: String { directory.appendingPathComponent("counts").path }

    /// Runs the scenario; returns the results, the items it took from the journal and the
    /// inputs computed in this run.
    func run(
        count: Int, state: Int = 0, sleepMicros: Int = 0, mode: Int = 0, chunk: Int = 1, changeFrom: Int = -1,
        environment: [String: String] = [:]
    ) async throws -> (results: [Int], fromJournal: Int, computed: [Int], stderr: String) {
        try? FileManager.default.removeItem(atPath: counts)
        let outcome = try await FixtureProcess.run(
            ["journal-run", "\(count)", "\(state)", "\(sleepMicros)", "\(mode)", "\(chunk)", "\(changeFrom)"],
            environment: environment.merging(["MP_JOURNAL": journal, "JOURNAL_COUNTS": counts]) { a, _ in a },
            removing: FixtureProcess.sizingVariables, waitingFor: "a journaled run")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let results = outcome.line("results ").dropFirst(8).split(separator: ",").compactMap { Int($0) }
        let fromJournal = Int(outcome.line("from_journal ").dropFirst(13)) ?? -1
        return (results, fromJournal, computedInputs(), outcome.stderr)
    }

    func computedInputs() -> [Int] {
        let text = (try? String(contentsOfFile: counts, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int($0) }
    }

    func expected(_ count: Int, state: Int = 0, changeFrom: Int = -1) -> [Int] {
        (0..<count).map { i in
            let x = changeFrom >= 0 && i >= changeFrom ? i + 1000 : i
            return x * x + state
        }
    }

    @Test(
        "SIGKILL at random moments, then a rerun: the exact result, nothing computed twice but what was in flight",
        arguments: Engine.allCases)
    func killAndResume(engine: Engine) async throws {
        let count = 80
        var allComputed: [Int] = []
        var kills = 0
        for _ in 0..<4 {
            try? FileManager.default.removeItem(atPath: counts)
            let (process, _, _) = try FixtureProcess.start(
                ["journal-run", "\(count)", "0", "20000", "0", "1", "-1"],
                environment: ["MP_JOURNAL": journal, "JOURNAL_COUNTS": counts, "MP_ENGINE": engine.rawValue],
                removing: FixtureProcess.sizingVariables)
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...450)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            kills += 1
            try await Task.sleep(for: .milliseconds(100))  // the workers see their lifeline close
            allComputed += computedInputs()
        }
        let last = try await run(count: count, sleepMicros: 20000, environment: engine.environment)
        allComputed += last.computed
        #expect(last.results == expected(count))
        #expect(Set(allComputed) == Set(0..<count), "every item computed at least once")
        let twice = allComputed.count - count
        // In flight at a kill: at most one item per worker (2), plus one each may start
        // before it sees its parent gone.
        #expect(twice <= kills * 4, "\(twice) items computed again after \(kills) kills")
        #expect(last.fromJournal == count - last.computed.count)
        #expect(last.fromJournal > 0)
    }

    @Test("a torn last record: the rerun computes exactly that item", arguments: Engine.allCases)
    func tornRecord(engine: Engine) async throws {
        let first = try await run(count: 20, environment: engine.environment)
        #expect(first.results == expected(20) && first.computed.count == 20 && first.fromJournal == 0)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: journal))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - 3)
        try handle.close()
        let rerun = try await run(count: 20, environment: engine.environment)
        #expect(rerun.results == expected(20))
        #expect(rerun.computed.count == 1)
        #expect(rerun.fromJournal == 19)
        #expect(rerun.stderr.contains("dropped a torn or corrupt tail"))
        let again = try await run(count: 20, environment: engine.environment)
        #expect(again.computed.isEmpty && again.fromJournal == 20 && again.results == expected(20))
    }

    @Test("changed state, changed inputs, other counts, another build: recomputed, never stale")
    func changes() async throws {
        _ = try await run(count: 20)
        let state = try await run(count: 20, state: 5)
        #expect(state.results == expected(20, state: 5) && state.computed.count == 20 && state.fromJournal == 0)
        #expect(state.stderr.contains("the function's state changed"))
        let inputs = try await run(count: 20, changeFrom: 15)
        #expect(inputs.results == expected(20, changeFrom: 15))
        #expect(inputs.computed.sorted() == Array(1015..<1020) && inputs.fromJournal == 15)
        #expect(inputs.stderr.contains("5 inputs changed"))
        // The journal keeps the latest result per index: 15..<20 now hold the changed inputs'.
        let more = try await run(count: 25)
        #expect(more.results == expected(25) && more.computed.sorted() == Array(15..<25) && more.fromJournal == 15)
        let fewer = try await run(count: 10)
        #expect(fewer.results == expected(10) && fewer.computed.isEmpty && fewer.fromJournal == 10)
        let build = try await run(count: 20, environment: ["MP_JOURNAL_BUILD_ID": "another build"])
        #expect(build.results == expected(20) && build.computed.count == 20 && build.fromJournal == 0)
        #expect(build.stderr.contains("different build"))
        let anyBuild = try await run(
            count: 20, environment: ["MP_JOURNAL_BUILD_ID": "a third build", "MP_JOURNAL_ANY_BUILD": "1"])
        #expect(anyBuild.results == expected(20) && anyBuild.computed.isEmpty && anyBuild.fromJournal == 20)
    }

    @Test(
        "imap, imapUnordered, mapReduce and applyAsync resume what map journaled",
        arguments: Engine.allCases, [1, 2, 3, 4])
    func streams(engine: Engine, mode: Int) async throws {
        _ = try await run(count: 12, environment: engine.environment)
        let rerun = try await run(count: 30, mode: mode, chunk: mode == 4 ? 1 : 3, environment: engine.environment)
        let all = expected(30)
        #expect(rerun.results == (mode == 3 ? [all.reduce(0, +)] : all))
        #expect(rerun.computed.sorted() == Array(12..<30))
        if mode != 4 { #expect(rerun.fromJournal == 12) }
        let again = try await run(count: 30, mode: mode, environment: engine.environment)
        #expect(again.computed.isEmpty && again.results == (mode == 3 ? [all.reduce(0, +)] : all))
    }
}
