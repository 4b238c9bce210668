import Foundation
import Testing

@testable import Multiprocessing

/// Streams, submitted calls, map-reduce and starmap, against real workers (each scenario
/// in its own fixture process, under a deadline).
@Suite("Streams and submitted calls (real workers)", .timeLimit(.minutes(3)))
struct StreamTests {
    @Test("the ordered stream over 10 million lazy items keeps order and stays under a fixed memory bound")
    func orderedStreamBoundedMemory() async throws {
        let outcome = try await FixtureProcess.run(
            ["imap-rss", "10000000"], timeout: .seconds(120), waitingFor: "10 million items through imap")
        var sum = 0
        for i in 0..<10_000_000 { sum = sum &+ i &* i }
        #expect(outcome.int("count") == 10_000_000, "\(outcome.transcript)")
        #expect(outcome.int("sum") == sum, "\(outcome.transcript)")
        #expect(outcome.int("out-of-order") == 0, "\(outcome.transcript)")
        let peak = Int(outcome.line("peak rss kib").split(separator: " ").last ?? "") ?? .max
        // The input alone would take 80 MB as an array, the outputs 80 MB more.
        #expect(peak < 48 * 1024, "peak RSS \(peak) KiB: the stream should hold only a bounded window of chunks")
    }

    @Test(
        "a slow consumer holds the input back: it is read only as far as the window allows", arguments: Engine.allCases)
    func backpressure(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["imap-backpressure"], environment: engine.environment, waitingFor: "a slow consumer")
        #expect(outcome.int("taken") == 100, "\(outcome.transcript)")
        let pulled = try #require(outcome.int("pulled"), "\(outcome.transcript)")
        #expect((100...190).contains(pulled), "the stream read \(pulled) inputs for 100 taken")
        #expect(outcome.line("after") == "after [49]")
    }

    @Test(
        "a failed item is yielded at its index and the stream goes on (ordered and unordered)",
        arguments: Engine.allCases)
    func failedItemsInStreams(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["imap-failures"], environment: engine.environment, waitingFor: "streams with a failing item")
        #expect(
            outcome.lines == [
                "0:1 1:2 2:3 3:4 4:5 5:function threw@5 6:7 7:8 8:9 9:10 10:11 11:12",
                "1 2 3 4 5 6 7 E 9 10 11 12",
            ], "\(outcome.stderr)")
    }

    @Test("the unordered stream yields every index exactly once, each with its own result", arguments: Engine.allCases)
    func unorderedEveryIndexOnce(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["unordered", "500"], environment: engine.environment, waitingFor: "an unordered stream of 500 items")
        #expect(outcome.int("count") == 500, "\(outcome.transcript.prefix(500))")
        let indexes = try #require(outcome.ints("indexes"), "\(outcome.transcript)").map { $0 ?? -1 }
        #expect(indexes.sorted() == Array(0..<500), "every index exactly once")
        let values = try #require(outcome.list("values"))
        #expect(values == indexes.map { "\($0)" }, "each index comes with its own result")
    }

    @Test("1,000 submitted calls awaited out of order; a cancelled call stops its work", arguments: Engine.allCases)
    func submittedCalls(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["apply-async", "1000"], environment: engine.environment, waitingFor: "1,000 submitted calls")
        #expect(outcome.int("awaited") == 1000, "\(outcome.transcript.prefix(500))")
        #expect(outcome.ints("values", on: "awaited=") == (0..<1000).map { $0 * $0 })
        #expect(outcome.line("cancelled").hasPrefix("cancelled: code=cancelled"))
        #expect(outcome.line("after cancel") == "after cancel 81")
        #expect(
            outcome.line("awaiting task cancelled: ").contains(" code=cancelled "), "\(outcome.transcript.suffix(800))")
        let ms = try #require(outcome.int("ms", on: "awaiting task cancelled: "), "\(outcome.transcript.suffix(800))")
        #expect(ms < 1000, "the awaited call ran on \(ms) ms after its task was cancelled")
    }

    @Test("cancelling the task that consumes a stream stops its work: the workers go idle; the pool goes on")
    func cancellingConsumerStopsWork() async throws {
        let outcome = try await FixtureProcess.run(["cancel-stream"], waitingFor: "a cancelled stream")
        // CPU ticks (1/100 s): both workers busy before the cancel, neither after it.
        let busy = try #require(outcome.ints("ticks", on: "busy "), "\(outcome.transcript)").map { $0 ?? -1 }
        #expect(busy.count == 2 && busy.allSatisfy { $0 >= 5 }, "\(outcome.transcript)")
        #expect(outcome.line("busy ").hasSuffix(" consumer got error"), "\(outcome.transcript)")
        #expect(outcome.line("workers ").hasPrefix("workers 2 "), "\(outcome.transcript)")
        let first = try #require(outcome.ints("ticks", on: "workers "), "\(outcome.transcript)").map { $0 ?? -1 }
        let later = try #require(outcome.ints("later", on: "workers ")).map { $0 ?? -1 }
        #expect(first.count == 2 && later.count == 2, "\(outcome.transcript)")
        #expect(
            zip(first, later).allSatisfy { $1 - $0 <= 2 },
            "workers still computing after the cancel: \(first) then \(later)")
        #expect(outcome.line("after") == "after [1, 4, 9]")
    }

    @Test(
        "the README's snippets compile on the main actor (where @main code runs) and print what it says",
        arguments: Engine.allCases)
    func readmeSnippets(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["readme"], environment: engine.environment, waitingFor: "the README snippets")
        #expect(
            outcome.lines == [
                "[1, 4, 9, 16, 25, 36, 49, 64]", "[1024, 9]", "332833500", "332833500", "332833500", "144",
            ],
            "\(outcome.stderr)")
    }

    @Test("starmap with tuple arguments, map with a struct input", arguments: Engine.allCases)
    func starmap(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(["starmap"], environment: engine.environment, waitingFor: "starmap")
        #expect(outcome.lines == ["[1024, 9, 1]", "[6.0, 2.0]"], "\(outcome.stderr)")
    }

    @Test("map-reduce folds in order or as results arrive, and throws at a failed item", arguments: Engine.allCases)
    func mapReduce(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["map-reduce"], environment: engine.environment, waitingFor: "map-reduce")
        #expect(
            outcome.ints("values", on: "ordered ") == (0..<1000).map { $0 * $0 }, "\(outcome.transcript.prefix(500))")
        #expect(outcome.line("unordered sum") == "unordered sum 333328333350000")
        #expect(
            outcome.line("code=").hasPrefix(
                "code=function threw index=50 type=mp_fixture.FailOn.Boom remote=boom at 50"))
    }
}

@Suite("Progress and reports", .timeLimit(.minutes(2)))
struct ProgressTests {
    @Test(
        "progress as lines (a Slurm output file): start, periodic lines, end; no control characters; the report's figures",
        arguments: Engine.allCases)
    func lines(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["progress-lines"], environment: engine.environment, waitingFor: "a call with progress lines")
        let lines = outcome.stderr.split(separator: "\n").map(String.init).filter {
            $0.contains("swift-multiprocessing: imap")
        }
        #expect(!outcome.stderr.contains("\r") && !outcome.stderr.contains("\u{1B}"), "no control characters")
        #expect(
            lines.first?.hasSuffix("swift-multiprocessing: imap started: 100 items on 2 workers") == true,
            "\(outcome.stderr)")
        #expect(lines.last?.contains("swift-multiprocessing: imap finished: 100/100 (100%), ") == true)
        #expect(lines.last?.hasSuffix(", 1 failed, 0 retried") == true)
        let periodic = lines.filter { $0.contains(" imap progress: ") }
        #expect((1...8).contains(periodic.count), "one line per 300 ms over about a second: \(periodic)")
        for line in lines {
            // 2026-11-25T13:58:42Z swift-multiprocessing: ...
            #expect(line.count > 21 && line.dropFirst(4).first == "-" && line.dropFirst(19).first == "Z", "\(line)")
        }
        #expect(outcome.line("failed") == "failed 1")
        #expect(outcome.line("report items") == "report items 100 failures 1 workers 100")
        #expect(outcome.line("100 items in ").hasSuffix(" 1 failed, 0 retried, 0 respawns"), "\(outcome.stdout)")
        #expect(outcome.lines.filter { $0.hasPrefix("  worker ") }.count == 2)
    }

    @Test("progress can be asked for by one call, in a pool that shows none", arguments: Engine.allCases)
    func perCall(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["progress-per-call"], environment: engine.environment, waitingFor: "a call with its own progress")
        let lines = outcome.stderr.split(separator: "\n").filter { $0.contains("swift-multiprocessing: map") }
        #expect(lines.count == 2, "\(outcome.stderr)")
        #expect(lines.first?.hasSuffix("swift-multiprocessing: map started: 40 items on 2 workers") == true)
        #expect(lines.last?.contains("swift-multiprocessing: map finished: 40/40 (100%), ") == true)
        #expect(outcome.lines == ["done"])
    }

    @Test("a progress callback gets updates while a call runs, and a last one when it ends", arguments: Engine.allCases)
    func callback(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["on-progress"], environment: engine.environment, waitingFor: "a call with a progress callback")
        #expect(
            outcome.lines.count == 2 && outcome.lines.last == "last map 40/40 finished true", "\(outcome.transcript)")
        #expect((outcome.int("updates") ?? 0) >= 3, "updates while the call runs: \(outcome.transcript)")
        let done = try #require(outcome.ints("done"), "\(outcome.transcript)").map { $0 ?? -1 }
        #expect(done.count == outcome.int("updates") && zip(done, done.dropFirst()).allSatisfy { $0 <= $1 }, "\(done)")
    }

    @Test("the bar and line texts", arguments: [true, false])
    func texts(known: Bool) {
        let snapshot = ProgressSnapshot(
            name: "map", done: 250, total: known ? 1000 : nil, failed: 2, retried: 1, elapsedNanos: 5_000_000_000)
        if known {
            #expect(
                snapshot.bar(width: 8) == "[##------] map 250/1000 (25%) 50.0 items/s 0:05 ETA 0:15 2 failed 1 retried")
            #expect(
                snapshot.line(event: "progress")
                    == "map progress: 250/1000 (25%), 50.0 items/s, elapsed 5.0 s, ETA 15.0 s, 2 failed, 1 retried")
        } else {
            #expect(snapshot.bar(width: 8) == "map 250 50.0 items/s 0:05 2 failed 1 retried")
        }
    }

    @Test(
        "MP_PROGRESS overrides the program's choice; a bad value is named",
        arguments: [
            (ProgressMode.off, "bar" as String?, true, ProgressMode.bar), (.bar, "off", true, .off),
            (.automatic, nil, true, .bar), (.automatic, nil, false, .lines), (.lines, "fancy", true, .lines),
            (.bar, "lines", true, .lines),
        ])
    func override(chosen: ProgressMode, environment: String?, terminal: Bool, expected: ProgressMode) {
        let (mode, warning) = ProgressMode.resolve(chosen, environment: environment, stderrIsTerminal: terminal)
        #expect(mode == expected)
        #expect(warning == (environment == "fancy" ? "MP_PROGRESS='fancy' is ignored: use off, bar or lines" : nil))
    }
}

@Suite("Logging", .timeLimit(.minutes(1)))
struct LoggingTests {
    @Test("worker lifecycle events reach the program's log handler, with the worker and its termination")
    func lifecycle() async throws {
        let outcome = try await FixtureProcess.run(["logging"], waitingFor: "a pool that logs")
        let lines = outcome.lines.filter { $0.hasPrefix("LOG ") }
        #expect(lines.filter { $0.hasPrefix("LOG debug worker started worker=") }.count == 3, "\(outcome.stdout)")
        #expect(
            lines.contains {
                $0.hasPrefix("LOG notice worker crashed worker=") && $0.hasSuffix("termination=exited with status 3")
            })
        #expect(lines.contains { $0.hasPrefix("LOG debug worker respawned worker=") })
        #expect(lines.filter { $0.hasPrefix("LOG debug worker exited ") }.count == 2)
    }
}
