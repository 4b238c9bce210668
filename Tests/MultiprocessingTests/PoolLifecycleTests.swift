import Foundation
import Testing

@testable import Multiprocessing

/// The pool's life beyond its calls: the interrupt results file (written line by line,
/// its path checked when the pool is created), a pool dropped without `close()`, the
/// graceful close, and reading partial results with the wrong type.
@Suite("Pool lifecycle", .timeLimit(.minutes(3)))
struct PoolLifecycleTests {
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("mp-\(name)-\(UUID().uuidString)").path
    }

    /// The results `interrupt-results` printed, one per item of its 400 (`-`: not received),
    /// after checking that each received one is its item's (the item itself, or `nan` for a
    /// multiple of `nanEvery`) and that the count it printed matches.
    static func receivedResults(
        _ outcome: FixtureProcess.Outcome, nanEvery: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [String] {
        let values = try #require(
            outcome.list("values", on: "results "), "no results printed: \(outcome.transcript)",
            sourceLocation: sourceLocation)
        #expect(values.count == 400, "\(outcome.transcript)", sourceLocation: sourceLocation)
        let misplaced = values.indices.filter { index in
            let own = nanEvery > 0 && index % nanEvery == 0 ? "nan" : "\(index)"
            return values[index] != "-" && values[index] != own
        }
        #expect(misplaced.isEmpty, "results at another item's index: \(misplaced)", sourceLocation: sourceLocation)
        #expect(
            outcome.int("received", on: "results ") == values.filter { $0 != "-" }.count, "\(outcome.transcript)",
            sourceLocation: sourceLocation)
        return values
    }

    @Test("partialResults with a type that is not the call's output type is nil, even when no result arrived")
    func partialResultsWrongType() {
        let error = MultiprocessingError(
            copying: MultiprocessingError(.functionThrew, "item 0 failed"), partialResults: [Int?]([nil, nil]))
        #expect(error.partialResults(as: String.self) == nil)
        #expect(error.partialResults(as: Int?.self) == nil)
        #expect(error.partialResults(as: Int.self).map { $0.count } == 2)
        let some = MultiprocessingError(
            copying: MultiprocessingError(.functionThrew, "item 1 failed"), partialResults: [Int?]([4, nil]))
        #expect(some.partialResults(as: Double.self) == nil)
        #expect(some.partialResults(as: Int.self) == [4, nil])
        #expect(MultiprocessingError(.poolClosed, "closed").partialResults(as: Int.self) == nil)
    }

    @Test(
        "interrupted: every result JSON can hold is written to the results file; the others are counted",
        arguments: Engine.allCases)
    func resultsFileSkipsWhatJSONCannotHold(engine: Engine) async throws {
        let path = Self.temporaryPath("results")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outcome = try await FixtureProcess.run(
            ["interrupt-results", "5"], environment: ["FIXTURE_RESULTS": path, "MP_ENGINE": engine.rawValue],
            waitingFor: "the interrupted map")
        #expect(outcome.status == 0, "\(outcome.transcript)")
        #expect(outcome.line("code=").hasPrefix("code=interrupted index=nil"), "\(outcome.transcript)")
        let values = try Self.receivedResults(outcome, nanEvery: 5)
        let received = values.filter { $0 != "-" }.count
        let nans = values.filter { $0 == "nan" }.count
        #expect(nans > 0 && received > nans, "the map must have received NaN and other results: \(values)")
        #expect(!outcome.stderr.contains("warning"), "a writable path gives no warning: \(outcome.stderr)")
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: wrote \(received - nans) of the \(received) results received so far to \(path); \(nans) could not be written: JSON cannot hold them"
            ), "\(outcome.stderr)")
        #expect(outcome.line("unwritten ") == "unwritten \(nans)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == received - nans)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int])
            #expect(object["call"] == 1)
            let index = try #require(object["index"])
            #expect(index % 5 != 0 && object["result"] == index, "\(line)")
        }
        #expect(outcome.line("closed, children") == "closed, children 0")
    }

    @Test(
        "an interruptResultsPath that cannot be written: a warning when the pool starts; at the signal the results stay in partialResults"
    )
    func unwritableResultsPath() async throws {
        let path = "/nonexistent-mp-directory-\(UUID().uuidString)/results.jsonl"
        let outcome = try await FixtureProcess.run(
            ["interrupt-results", "0"], environment: ["FIXTURE_RESULTS": path], waitingFor: "the interrupted map")
        #expect(outcome.status == 0, "\(outcome.transcript)")
        #expect(outcome.line("pool started") == "pool started", "the pool must start anyway")
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: warning: interruptResultsPath \(path) cannot be written (open: No such file or directory"
            ), "\(outcome.stderr)")
        #expect(outcome.line("code=").hasPrefix("code=interrupted index=nil"), "\(outcome.transcript)")
        let values = try Self.receivedResults(outcome, nanEvery: 0)
        let received = values.filter { $0 != "-" }.count
        #expect(received > 0 && !values.contains("nan"), "\(values)")
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: could not write the \(received) results received so far to \(path): "),
            "\(outcome.stderr)")
        #expect(outcome.line("unwritten ") == "unwritten \(received)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("the check of interruptResultsPath keeps an existing file's content and leaves no new file behind")
    func resultsPathCheck() throws {
        let existing = Self.temporaryPath("existing")
        defer { try? FileManager.default.removeItem(atPath: existing) }
        try "{\"call\":1,\"index\":0,\"result\":0}\n".write(toFile: existing, atomically: false, encoding: .utf8)
        #expect(ResultsFile.problem(appendingTo: existing) == nil)
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "{\"call\":1,\"index\":0,\"result\":0}\n")

        let fresh = Self.temporaryPath("fresh")
        #expect(ResultsFile.problem(appendingTo: fresh) == nil)
        #expect(!FileManager.default.fileExists(atPath: fresh), "the check must not leave an empty file")

        #expect(ResultsFile.problem(appendingTo: "/nonexistent-mp-dir/r.jsonl") == "open: No such file or directory")
        #expect(ResultsFile.problem(appendingTo: FileManager.default.temporaryDirectory.path) == "open: Is a directory")

        // Appending after the check: the old line stays, one line per result JSON can hold.
        let outcome = try ResultsFile.append([2.0, nil, .nan, 4.0, .infinity], call: 3, to: existing)
        #expect(outcome.written == 2 && outcome.unwritable == 2 && outcome.firstUnwritable?.index == 2)
        #expect(
            try String(contentsOfFile: existing, encoding: .utf8)
                == "{\"call\":1,\"index\":0,\"result\":0}\n{\"call\":3,\"index\":0,\"result\":2}\n{\"call\":3,\"index\":3,\"result\":4}\n"
        )
    }

    @Test("a pool dropped without close() reaps its workers: no zombie is left")
    func droppedPoolReapsWorkers() async throws {
        let outcome = try await FixtureProcess.run(["drop-unclosed"], waitingFor: "the dropped pool's workers")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("children while open") == "children while open 2")
        #expect(
            outcome.line("children after drop") == "children after drop 0 supervisor threads 0", "\(outcome.stdout)")
    }

    @Test(
        "closeAndJoin lets submitted work finish (applyAsync not awaited, a stream, a dying worker), refuses new calls with poolClosed, then closes"
    )
    func closeAndJoinFinishesSubmittedWork() async throws {
        let outcome = try await FixtureProcess.run(["close-and-join", "0"], waitingFor: "closeAndJoin")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
        let lines = outcome.lines
        #expect(
            outcome.line("probe after join began: ")
                == "probe after join began: code=pool closed index=nil type=nil remote=nil message=the pool is closing: closeAndJoin() was called, so it finishes the work submitted before and takes no more. Submit all work before calling closeAndJoin(), or create a new pool",
            "\(outcome.stdout)")
        #expect(lines.contains("applyAsync after join began: code=pool closed"))
        #expect(lines.contains("imap after join began: code=pool closed"))
        // 6 calls of 150 ms on 2 workers take at least 450 ms: the join waited for them.
        #expect((outcome.seconds("seconds", on: "join waited ") ?? 0) > 0.4, "\(outcome.transcript)")
        #expect(outcome.list("values", on: "pending ") == (0..<6).map { "\($0)" }, "\(outcome.transcript)")
        #expect(outcome.line("crashing call: ").hasPrefix("crashing call: code=worker died index=0 "))
        #expect(outcome.ints("values", on: "stream ") == Array(0..<40), "\(outcome.transcript)")
        #expect(lines.contains("after join: children 0, calls pool closed"), "\(outcome.stdout)")
    }

    @Test("cancelling the task that waits in closeAndJoin closes at once: calls still running fail with poolClosed")
    func closeAndJoinCancelled() async throws {
        let outcome = try await FixtureProcess.run(["close-and-join", "1"], waitingFor: "a cancelled closeAndJoin")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
        let seconds = try #require(outcome.seconds("seconds", on: "join returned "), "\(outcome.transcript)")
        #expect(seconds < 1, "closeAndJoin returned \(seconds) s after its task was cancelled")
        #expect(outcome.line("long call: ").hasPrefix("long call: code=pool closed"), "\(outcome.stdout)")
        #expect(outcome.line("after join: ") == "after join: children 0, calls pool closed")
    }
}
