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
    }

    /// Starts `long-map`, waits until it has workers and some results, sends `signals`.
    func interrupt(with signals: [Int32], environment: [String: String] = [:]) async throws -> Run {
        let (process, out, err) = try FixtureProcess.start(["long-map"], environment: environment)
        guard
            let line = await SignalSender.send(
                signals, to: process, whenLineStarts: "children ", in: out, after: .milliseconds(800))  // some items finish
        else {
            process.terminate()
            Issue.record("timed out waiting for long-map to print its workers")
            throw CancellationError()
        }
        let workers = line.split(separator: " ").dropFirst().compactMap { Int32($0) }
        let exitDeadline = ContinuousClock.now + .seconds(20)
        while process.isRunning {
            guard ContinuousClock.now < exitDeadline else {
                kill(process.processIdentifier, SIGKILL)
                Issue.record("timed out waiting for the interrupted program to exit")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let outcome = FixtureProcess.Outcome(
            status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        return Run(outcome: outcome, workers: workers)
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
        #expect(out.status == 143, "\(out.stdout)\(out.stderr)")
        #expect(out.line("code=").hasPrefix("code=interrupted index=nil"))
        #expect(
            out.line("code=").contains(
                "the program received SIGTERM (Slurm sends it at the job's time limit and on scancel); the pool stopped its workers and takes no more work. A map, starmap or apply keeps the results it had received"
            ))
        #expect(
            out.stderr.contains(
                "swift-multiprocessing: received SIGTERM (Slurm sends it at the job's time limit and on scancel): stopping the pool; results already received are kept"
            ))
        #expect(out.line("closed, children") == "closed, children 0")
        let received = out.line("received").split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        #expect(received > 0)
        #expect(out.line("received").hasSuffix("all correct true"))
        #expect(out.stderr.contains("swift-multiprocessing: wrote the \(received) results received so far to \(path)"))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == received)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int]
            #expect(object?["call"] == 1)
            #expect(object?["index"] != nil && object?["index"] == object?["result"], "\(line)")
        }
        try await expectTreeGone(run)
    }

    @Test("SIGINT stops the pool in order and the program sees the interruption")
    func sigint() async throws {
        let run = try await interrupt(with: [SIGINT])
        #expect(run.outcome.status == 130, "\(run.outcome.stdout)\(run.outcome.stderr)")
        #expect(
            run.outcome.line("code=").contains("the program received SIGINT (Ctrl-C; press it again to exit at once)"))
        #expect(run.outcome.line("closed, children") == "closed, children 0")
        try await expectTreeGone(run)
    }

    @Test("a second SIGINT exits at once, and the workers follow")
    func secondSigint() async throws {
        let run = try await interrupt(with: [SIGINT, SIGINT], environment: ["FIXTURE_LINGER": "1"])
        #expect(run.outcome.status == 130)
        #expect(run.outcome.stderr.contains("swift-multiprocessing: second SIGINT: exiting now"))
        #expect(run.outcome.line("closed").isEmpty, "the program must not have gone on after the second SIGINT")
        try await expectTreeGone(run)
    }
}
