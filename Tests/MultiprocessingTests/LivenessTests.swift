import Foundation
import Testing

/// Nothing waits forever when `itemTimeout` is set (a frozen worker, a slow decode or
/// encode, a half-written frame), one bad value fails one item, and every error the library
/// raises in a worker arrives with its own code. Each scenario runs in a fixture process
/// under a deadline: one that hangs fails with what it waited for.
@Suite("Liveness and error codes (real workers)", .timeLimit(.minutes(3)))
struct LivenessTests {
    @Test("a worker frozen (SIGSTOP) while idle is timed out and replaced; its queued work runs elsewhere")
    func frozenIdleWorker() async throws {
        let outcome = try await FixtureProcess.run(["frozen-idle"], waitingFor: "a map queued to a frozen worker")
        #expect(outcome.ints("values", on: "map ") == Array(0..<40), "\(outcome.transcript)")
        let seconds = try #require(outcome.seconds("seconds", on: "map "), "\(outcome.transcript)")
        #expect(seconds < 10, "the map queued to a frozen worker took \(seconds) s")
        #expect(outcome.line("respawns") == "respawns 1 failures 0", "queued work is not counted as failed")
        #expect(outcome.line("children after close") == "children after close 0")
    }

    @Test("a worker frozen at a random moment of a short-item map never hangs it; with a retry the map is exact")
    func frozenAtRandom() async throws {
        let outcome = try await FixtureProcess.run(
            ["frozen-random", "10"], timeout: .seconds(100), waitingFor: "10 maps, each with a frozen worker")
        #expect(outcome.lines.filter { $0.hasPrefix("run ") }.count == 10, "\(outcome.transcript.prefix(2000))")
        for run in 0..<10 {
            #expect(outcome.ints("values", on: "run \(run) ") == Array(0..<200), "run \(run) was not exact")
        }
    }

    @Test("an input whose decoding blocks times out alone; the rest of its chunk and the chunks behind it succeed")
    func slowDecode() async throws {
        let outcome = try await FixtureProcess.run(["slow-decode"], waitingFor: "a chunk with a blocking decode")
        let expected =
            (0..<10).map {
                $0 == 3
                    ? "3 code=timed out index=3 decoding the input of item 3 took longer than" : "\($0) ok \($0 + 10)"
            }
        #expect(outcome.lines.first == "\(expected)", "\(outcome.stdout)\(outcome.stderr)")
        #expect((outcome.seconds("seconds") ?? .infinity) < 10, "\(outcome.transcript)")
    }

    @Test("an output whose encoding blocks times out alone; the other items succeed")
    func slowEncode() async throws {
        let outcome = try await FixtureProcess.run(["slow-encode"], waitingFor: "a chunk with a blocking encode")
        let expected =
            (0..<10).map {
                $0 == 3
                    ? "3 code=timed out index=3 encoding the result of item 3 took longer tha" : "\($0) ok \($0 + 10)"
            }
        #expect(outcome.lines.first == "\(expected)", "\(outcome.stdout)\(outcome.stderr)")
        #expect((outcome.seconds("seconds") ?? .infinity) < 10, "\(outcome.transcript)")
    }

    @Test("a worker that wrote half a frame and stalled is timed out; the call goes to a fresh worker")
    func halfWrittenFrame() async throws {
        let outcome = try await FixtureProcess.run(["half-frame"], waitingFor: "a call queued after half a frame")
        #expect(outcome.lines.count == 2 && outcome.lines.first == "first 0", "\(outcome.transcript)")
        #expect(outcome.line("second ").hasPrefix("second 42 seconds="), "\(outcome.transcript)")
        #expect((outcome.seconds("seconds", on: "second ") ?? .infinity) < 10, "\(outcome.transcript)")
    }

    @Test("without itemTimeout, a stuck worker is named in the progress lines and in the report")
    func stalledWorkerIsNamed() async throws {
        let outcome = try await FixtureProcess.run(["stalled"], waitingFor: "a map with a stopped worker")
        #expect(
            outcome.line("  stalled: ").hasPrefix("  stalled: worker 0 (pid P on "),
            "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("  stalled: ").contains(" has held items "))
        #expect(
            outcome.line("  stalled: ").contains("; it may be stuck (ProcessPool.Options.itemTimeout stops such items)")
        )
        #expect(outcome.stderr.contains("swift-multiprocessing: worker 0 (pid "))
        #expect(outcome.stderr.contains(" has held items "))
        #expect(outcome.ints("values", on: "map ") == Array(0..<20), "\(outcome.transcript)")
    }

    @Test("one bad value among 200 fails only its item, with its own code, wherever it is encoded or decoded")
    func oneBadValueFailsOneItem() async throws {
        let outcome = try await FixtureProcess.run(["bad-values"], waitingFor: "maps with one bad value")
        let lines = outcome.lines
        for (place, code, runs, where_) in [
            ("encodeInParent", "encoding failed", 199, "the input of item 13 (mp_fixture.Touchy) could not be encoded"),
            ("decodeInWorker", "decoding failed", 199, "the worker could not decode the input of item 13"),
            ("encodeInWorker", "encoding failed", 200, "the worker could not encode the result of item 13"),
            ("decodeInParent", "decoding failed", 200, "the result of item 13 from worker "),
        ] {
            // Every other item came back as itself; the function ran once for every item it
            // could run, and never twice.
            let at = try #require(
                lines.firstIndex { $0.hasPrefix("\(place): values=") }, "\(place): \(outcome.stdout)")
            let expected = (0..<200).map { $0 == 13 ? "-" : "\($0)" }.joined(separator: ",")
            #expect(lines[at] == "\(place): values=\(expected) failed 1 runs \(runs)", "\(lines[at])")
            #expect(lines[at + 1].hasPrefix("  13 code=\(code) index=13 type=nil remote=nil "), "\(lines[at + 1])")
            #expect(lines[at + 1].contains(where_), "\(lines[at + 1])")
            #expect(lines[at + 2].hasPrefix("  map: code=\(code) index=13 kept "), "\(lines[at + 2])")
        }
    }

    @Test("a value over the frame limit fails only its item with frameTooLarge and its index, in any chunk size")
    func oversizedValues() async throws {
        let outcome = try await FixtureProcess.run(["too-large"], waitingFor: "streams with oversized values")
        for chunkSize in [1, 10] {
            let at = try #require(
                outcome.lines.firstIndex { $0.hasPrefix("chunkSize \(chunkSize): ") }, "\(outcome.stdout)")
            // Every other item's result came back with its own index as its first byte.
            let expected = (0..<20).map { [7, 13].contains($0) ? "-" : "\($0)" }.joined(separator: ",")
            #expect(
                outcome.lines[at] == "chunkSize \(chunkSize): firsts=\(expected) failed 2 runs 19",
                "\(outcome.lines[at])")
            #expect(outcome.lines[at + 1].hasPrefix("  7 code=frame too large index=7 "))
            #expect(outcome.lines[at + 1].contains("the input of item 7 encodes to 2097157 bytes"))
            #expect(outcome.lines[at + 2].hasPrefix("  13 code=frame too large index=13 "))
            #expect(outcome.lines[at + 2].contains("the result of item 13 encodes to 2097156 bytes"))
        }
        #expect(
            outcome.line("together: ") == "together: imap [0, 1, 2, 3, 4, 5] map [0, 1, 2, 3, 4, 5] runs 12",
            "inputs that fit one by one are cut into chunks that fit; none is lost or sent twice")
    }

    @Test("a pool created inside a worker arrives as insideWorker, not as functionThrew")
    func libraryErrorsKeepTheirCode() async throws {
        let outcome = try await FixtureProcess.run(["nested-pool-error"], waitingFor: "a pool created in a worker")
        #expect(
            outcome.lines.first?.hasPrefix("code=pool created inside a worker index=0 type=nil remote=nil ") == true,
            "\(outcome.stdout)\(outcome.stderr)")
    }

    @Test("an initializer that exits is initializerFailed, naming the exit status")
    func initializerThatExits() async throws {
        let outcome = try await FixtureProcess.run(["initializer-exit"], waitingFor: "an initializer calling exit(4)")
        let first = outcome.lines.first ?? ""
        #expect(first.hasPrefix("code=initializer failed "), "\(outcome.stdout)\(outcome.stderr)")
        #expect(first.contains("the worker exited with status 4 while running it"))
        #expect(first.hasSuffix("[exit 4]"))
    }
}
