import Foundation
import Testing

/// Fault injection against real workers, in the spirit of CPython's
/// `test_concurrent_futures/test_deadlock.py`: a worker crashes while decoding its input,
/// while running, while encoding its result, at start and at shutdown, with and without
/// retries; timeouts; initializers; recycling. Each scenario runs in a fixture process
/// under a deadline, and the message a user would see is asserted.
@Suite("Fault injection (real workers)", .timeLimit(.minutes(3)))
struct FaultTests {
    func matrix(retries: Int) async throws -> FixtureProcess.Outcome {
        let outcome = try await FixtureProcess.run(
            ["fault-matrix", "\(retries)"], waitingFor: "the fault matrix with \(retries) retries")
        #expect(outcome.status == 0, "\(outcome.stdout)")
        return outcome
    }

    @Test("crash while running: only that item fails, every other result of its chunk is kept", arguments: [0, 1])
    func crashWhileRunning(retries: Int) async throws {
        let lines = try await matrix(retries: retries).lines
        let at = try #require(lines.firstIndex(of: "running: ok 7 failed 1"))
        let failure = lines[at + 1]
        #expect(failure.hasPrefix("  3 code=worker died index=3 "))
        #expect(failure.contains("exited with status 3 while running item 3."))
        #expect(failure.hasSuffix("[exit 3]"))
        if retries == 0 {
            #expect(!failure.contains("attempts"))
        } else {
            #expect(failure.contains("message=all 2 attempts failed — attempt 1: worker "), "each attempt is reported")
            #expect(failure.contains(" | attempt 2: worker "))
        }
    }

    @Test(
        "crash while decoding an input fails only that item, naming the phase; the rest of its chunk runs",
        arguments: [0, 1])
    func crashWhileDecoding(retries: Int) async throws {
        let lines = try await matrix(retries: retries).lines
        let at = try #require(lines.firstIndex(of: "decoding: ok 5 failed 1"), "\(lines)")
        let failure = lines[at + 1]
        #expect(failure.hasPrefix("  3 code=worker died index=3 "))
        #expect(failure.contains("was killed by signal 6 (SIGABRT: abort()) while decoding the input of item 3."))
        #expect(failure.contains("all 2 attempts failed") == (retries == 1))
    }

    @Test(
        "crash while encoding a result fails only that item, naming the phase; the rest of its chunk runs",
        arguments: [0, 1])
    func crashWhileEncoding(retries: Int) async throws {
        let lines = try await matrix(retries: retries).lines
        let at = try #require(lines.firstIndex(of: "encoding: ok 5 failed 1"), "\(lines)")
        let failure = lines[at + 1]
        #expect(failure.hasPrefix("  3 code=worker died index=3 "))
        #expect(failure.contains("was killed by signal 6 (SIGABRT: abort()) while encoding the result of item 3."))
    }

    @Test("a result that cannot be encoded fails its item with encodingFailed, naming the type")
    func unencodableResult() async throws {
        let lines = try await matrix(retries: 0).lines
        let at = try #require(lines.firstIndex(of: "unencodable: ok 0 failed 2"))
        #expect(
            lines[at + 1].hasPrefix(
                "  0 code=encoding failed index=0 type=nil remote=nil message=item 0 failed in worker "))
        #expect(
            lines[at + 1].contains(
                "the worker could not encode the result of item 0 (mp_fixture.Unencodable): "
            ))
        #expect(lines[at + 1].contains("refused to encode"))
        #expect(lines.last == "children after close 0")
    }

    @Test("a worker killed once: without retries the item fails; with retries the map succeeds", arguments: [0, 1])
    func retriedAfterKill(retries: Int) async throws {
        let outcome = try await FixtureProcess.run(
            ["crash-once", "\(retries)"], waitingFor: "a map whose worker dies once")
        if retries == 0 {
            #expect(
                outcome.lines.first?.hasPrefix("map failed: code=worker died index=7 ") == true, "\(outcome.stdout)")
            #expect(
                outcome.lines.first?.contains(
                    "was killed by signal 9 (SIGKILL) — often the kernel's out-of-memory killer") == true)
        } else {
            #expect(outcome.ints("values", on: "map ") == (0..<20).map { $0 * 10 }, "\(outcome.transcript)")
        }
    }

    @Test(
        "one-item chunks: a worker dying while it holds the unsent results of earlier chunks loses none of them",
        arguments: [0, 1])
    func heldResultsSurviveACrash(retries: Int) async throws {
        let outcome = try await FixtureProcess.run(
            ["crash-once", "\(retries)", "4000", "1", "2500"],
            waitingFor: "a map of one-item chunks whose worker dies once")
        if retries == 0 {
            #expect(
                outcome.lines.first?.hasPrefix("map failed: code=worker died index=2500 ") == true, "\(outcome.stdout)")
            // The results received before the failure are kept, each at its own index.
            let partial = try #require(outcome.ints("values", on: "partial "), "\(outcome.transcript)")
            #expect(partial.count == 4000 && outcome.int("count", on: "partial ") == 4000)
            #expect(partial.contains { $0 != nil }, "no result kept: \(outcome.transcript.prefix(500))")
            #expect(partial.indices.allSatisfy { partial[$0] == nil || partial[$0] == $0 * 10 })
            #expect(partial.count > 2500 && partial[2500] == nil)
        } else {
            #expect(
                outcome.ints("values", on: "map ") == (0..<4000).map { $0 * 10 }, "\(outcome.transcript.prefix(500))")
        }
    }

    @Test("an item past its timeout is stopped with its worker and reported as timed out; the pool goes on")
    func timeout() async throws {
        let outcome = try await FixtureProcess.run(["timeout"], waitingFor: "an item that runs past its timeout")
        #expect(outcome.lines.prefix(4) == ["0 0", "1 1", "2 2", "3 3"], "\(outcome.stdout)")
        #expect(outcome.line("4 ").hasPrefix("4 code=timed out index=0 "))
        #expect(outcome.line("4 ").contains("ran longer than the per-item timeout of 0.5 s; worker "))
        #expect(outcome.line("4 ").contains(" was stopped and replaced"))
        #expect(outcome.line("after") == "after [25]")
        let seconds = try #require(outcome.seconds("seconds"), "\(outcome.transcript)")
        #expect(seconds < 5, "the item past its 0.5 s timeout held the pool for \(seconds) s")
    }

    @Test("an initializer runs in every worker; a failing one is reported once, clearly, without a respawn loop")
    func initializer() async throws {
        let outcome = try await FixtureProcess.run(["initializer"], waitingFor: "pools with initializers")
        #expect(outcome.lines.first == "[\"hello 1\", \"hello 2\", \"hello 3\"]", "\(outcome.stdout)")
        let failure = outcome.lines.dropFirst().first ?? ""
        #expect(failure.hasPrefix("code=initializer failed index=nil "))
        #expect(
            failure.contains(
                "the worker initializer mp_fixture.FailingInitializer threw mp_fixture.FailingInitializer.Broken: the model file is missing."
            ))
        #expect(failure.contains("No worker can start until the initializer succeeds."))
        #expect(outcome.line("pool started").isEmpty, "\(outcome.transcript)")
        #expect(outcome.int("children", on: "failed ") == 0, "\(outcome.transcript)")
        let seconds = try #require(outcome.seconds("seconds", on: "failed "), "\(outcome.transcript)")
        #expect(seconds < 5, "a failing initializer took \(seconds) s to fail the pool's creation")
    }

    @Test("a worker that crashes before the handshake fails pool creation, naming the signal")
    func crashAtStart() async throws {
        let outcome = try await FixtureProcess.run(
            ["crash-at-start"], waitingFor: "a pool whose workers crash at start")
        let first = outcome.lines.first ?? ""
        #expect(first.hasPrefix("code=handshake failed "), "\(outcome.stdout)")
        #expect(first.contains("was killed by signal 6 (SIGABRT: abort()) before completing the start-up handshake."))
        #expect(outcome.line("children") == "children 0")
    }

    @Test("a worker that crashes while shutting down does not hang or fail the close")
    func crashAtShutdown() async throws {
        let outcome = try await FixtureProcess.run(
            ["crash-at-shutdown"], waitingFor: "a pool whose workers crash at exit")
        #expect(outcome.lines == ["[1, 4, 9]", "closed, children 0"], "\(outcome.stdout)")
    }

    @Test("recycling after N items: worker pids change, results do not")
    func recycling() async throws {
        let outcome = try await FixtureProcess.run(["recycle"], waitingFor: "a pool that recycles workers")
        // 40 items, at most 5 per worker: at least 8 workers ran them.
        #expect((outcome.int("workers", on: "distinct ") ?? 0) >= 8, "\(outcome.transcript.prefix(300))")
        #expect(outcome.ints("values", on: "distinct ") == (0..<40).map { $0 * $0 })
        #expect(outcome.line("children after close") == "children after close 0")
    }
}

@Suite("Resource hygiene", .timeLimit(.minutes(3)))
struct HygieneTests {
    @Test("descriptors, library threads and children after 1,000 pools equal those after 10")
    func thousandPools() async throws {
        let outcome = try await FixtureProcess.run(
            ["hygiene", "1000"], timeout: .seconds(150), waitingFor: "1,000 pools created and closed")
        let after10 = outcome.line("after 10: ").dropFirst("after 10: ".count)
        let after1000 = outcome.line("after 1000: ").dropFirst("after 1000: ".count)
        #expect(!after10.isEmpty && after10 == after1000, "\(outcome.stdout)\(outcome.stderr)")
        #expect(after1000.hasSuffix("library threads 1 children 0"), "only the signal watcher thread remains")
    }
}
