import Foundation
import Testing

/// SIGINT and SIGTERM sent to a parent in the middle of a long map (the parent runs as a
/// child of the test): the pool stops in order, the program sees the interruption with
/// the results it has, the results file holds them, and no process of its tree remains.
@Suite("Signals to the parent", .timeLimit(.minutes(2)))
struct SignalTests {
    struct Run {
        var outcome: FixtureProcess.Outcome
        var workers: [Int32]
        /// When each signal was sent and whether the program was still running then.
        var sent: [String]

        /// What the program printed (its workers, its signal masks, how its map ended, the
        /// results it received) and when the test signalled it: every expectation's message,
        /// so that a failure says what the program saw.
        var transcript: String { "signals sent: \(sent.joined(separator: "; "))\n\(outcome.transcript)" }

        /// The results the program received, as printed (`-`: none at that index), or nil when
        /// it printed none (its map was not interrupted).
        var results: [String]? { outcome.list("values", on: "results ") }
    }

    /// Starts `long-map`, waits until it has workers and some results, sends `signals`.
    func interrupt(with signals: [Int32], environment: [String: String] = [:]) async throws -> Run {
        let (process, out, err) = try FixtureProcess.start(["long-map"], environment: environment)
        // 800 ms after the workers are seen, some items have finished.
        guard
            let done = await OwnThread.sendSignals(
                signals, to: process, whenLineStarts: "children ", in: out, after: .milliseconds(800))
        else {
            process.terminate()
            Issue.record("timed out waiting for long-map to print its workers")
            throw CancellationError()
        }
        let workers = done.line.split(separator: " ").dropFirst().compactMap { Int32($0) }
        let sent = done.signals
        let exitDeadline = ContinuousClock.now + .seconds(20)
        while process.isRunning {
            guard ContinuousClock.now < exitDeadline else {
                kill(process.processIdentifier, SIGKILL)
                let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
                let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
                Issue.record(
                    "timed out waiting for the interrupted program to exit; signals sent: \(sent); stdout:\n\(stdout)stderr:\n\(stderr)"
                )
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let outcome = FixtureProcess.Outcome(
            status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        return Run(outcome: outcome, workers: workers, sent: sent)
    }

    func expectTreeGone(_ run: Run) async throws {
        let deadline = ContinuousClock.now + .seconds(1)
        while !run.workers.allSatisfy(processIsGone) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(run.workers.allSatisfy(processIsGone), "workers \(run.workers) outlived their interrupted parent")
    }

    @Test("SIGTERM stops the pool in order; received results are kept and written to the results file")
    func sigterm() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mp-results-\(UUID().uuidString).jsonl"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try await interrupt(with: [SIGTERM], environment: ["FIXTURE_RESULTS": path])
        let out = run.outcome
        #expect(out.status == 143, "\(run.transcript)")
        #expect(out.line("code=").hasPrefix("code=interrupted index=nil"), "\(run.transcript)")
        #expect(
            out.line("code=").contains(
                "the program received SIGTERM (Slurm sends it at the job's time limit and on scancel); the pool stopped its workers and takes no more work. A map, starmap or apply keeps the results it had received"
            ), "\(run.transcript)")
        #expect(
            out.stderr.contains(
                "swift-multiprocessing: received SIGTERM (Slurm sends it at the job's time limit and on scancel): stopping the pool; results already received are kept"
            ), "\(run.transcript)")
        #expect(out.line("closed, children") == "closed, children 0", "\(run.transcript)")
        // Every result received sits at its own index (Busy returns its input), none lost.
        let results = try #require(run.results, "the program printed no results: \(run.transcript)")
        #expect(results.count == 200, "\(run.transcript)")
        let received = results.indices.filter { results[$0] != "-" }
        #expect(!received.isEmpty, "\(run.transcript)")
        #expect(received.allSatisfy { results[$0] == "\($0)" }, "a result at another item's index: \(results)")
        #expect(out.int("received", on: "results ") == received.count, "\(run.transcript)")
        #expect(
            out.stderr.contains(
                "swift-multiprocessing: wrote the \(received.count) results received so far to \(path)"),
            "\(run.transcript)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        var written: [Int] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int]
            #expect(object?["call"] == 1)
            #expect(object?["index"] != nil && object?["index"] == object?["result"], "\(line)")
            if let index = object?["index"] { written.append(index) }
        }
        #expect(written.sorted() == received, "the file holds exactly the results the program received")
        try await expectTreeGone(run)
    }

    @Test("SIGINT stops the pool in order and the program sees the interruption")
    func sigint() async throws {
        let run = try await interrupt(with: [SIGINT])
        #expect(run.outcome.status == 130, "\(run.transcript)")
        #expect(
            run.outcome.line("code=").hasPrefix("code=interrupted index=nil")
                && run.outcome.line("code=").contains(
                    "the program received SIGINT (Ctrl-C; press it again to exit at once)"),
            "\(run.transcript)")
        let results = try #require(run.results, "the program printed no results: \(run.transcript)")
        #expect(results.count == 200 && results.contains { $0 != "-" }, "\(run.transcript)")
        #expect(
            results.indices.allSatisfy { results[$0] == "-" || results[$0] == "\($0)" },
            "a result at another item's index: \(results)")
        #expect(run.outcome.line("closed, children") == "closed, children 0", "\(run.transcript)")
        try await expectTreeGone(run)
    }

    @Test("a second SIGINT exits at once, and the workers follow")
    func secondSigint() async throws {
        let run = try await interrupt(with: [SIGINT, SIGINT], environment: ["FIXTURE_LINGER": "1"])
        #expect(run.outcome.status == 130, "\(run.transcript)")
        #expect(run.outcome.line("code=").hasPrefix("code=interrupted index=nil"), "\(run.transcript)")
        #expect(run.outcome.stderr.contains("swift-multiprocessing: second SIGINT: exiting now"), "\(run.transcript)")
        #expect(
            run.outcome.line("closed").isEmpty,
            "the program must not have gone on after the second SIGINT: \(run.transcript)")
        try await expectTreeGone(run)
    }
}
