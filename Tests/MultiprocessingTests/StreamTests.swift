import Foundation
import Testing

/// Streams, submitted calls, map-reduce and starmap, against real workers (each scenario
/// in its own fixture process, under a deadline).
@Suite("Streams and submitted calls (real workers)", .timeLimit(.minutes(3)))
struct StreamTests {
    @Test("the ordered stream over 10 million lazy items keeps order and stays under a fixed memory bound")
    func orderedStreamBoundedMemory() async throws {
        let outcome = try await FixtureProcess.run(
            ["imap-rss", "10000000"], timeout: .seconds(120), waitingFor: "10 million items through imap")
        #expect(
            outcome.line("count") == "count 10000000 sum ok true in order true", "\(outcome.stdout)\(outcome.stderr)")
        let peak = Int(outcome.line("peak rss kib").split(separator: " ").last ?? "") ?? .max
        // The input alone would take 80 MB as an array, the outputs 80 MB more.
        #expect(peak < 48 * 1024, "peak RSS \(peak) KiB: the stream should hold only a bounded window of chunks")
    }

    @Test("a slow consumer holds the input back: it is read only as far as the window allows")
    func backpressure() async throws {
        let outcome = try await FixtureProcess.run(["imap-backpressure"], waitingFor: "a slow consumer")
        #expect(
            outcome.line("taken").hasPrefix("taken 100 pulled at most 190: true"), "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("after") == "after [49]")
    }

    @Test("a failed item is yielded at its index and the stream goes on (ordered and unordered)")
    func failedItemsInStreams() async throws {
        let outcome = try await FixtureProcess.run(["imap-failures"], waitingFor: "streams with a failing item")
        #expect(
            outcome.lines == [
                "0:1 1:2 2:3 3:4 4:5 5:function threw@5 6:7 7:8 8:9 9:10 10:11 11:12",
                "1 2 3 4 5 6 7 E 9 10 11 12",
            ], "\(outcome.stderr)")
    }

    @Test("the unordered stream yields every index exactly once, each with its own result")
    func unorderedEveryIndexOnce() async throws {
        let outcome = try await FixtureProcess.run(
            ["unordered", "500"], waitingFor: "an unordered stream of 500 items")
        #expect(outcome.lines == ["every index once true count 500"], "\(outcome.stderr)")
    }

    @Test("1,000 submitted calls awaited out of order; a cancelled call stops its work")
    func submittedCalls() async throws {
        let outcome = try await FixtureProcess.run(["apply-async", "1000"], waitingFor: "1,000 submitted calls")
        #expect(outcome.line("awaited") == "awaited 1000 out of order ok true", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("cancelled").hasPrefix("cancelled: code=cancelled"))
        #expect(outcome.line("after cancel") == "after cancel 81")
        #expect(
            outcome.line("awaiting task cancelled").hasPrefix("awaiting task cancelled within 1 s: true code=cancelled")
        )
    }

    @Test("cancelling the task that consumes a stream stops its work: the workers go idle; the pool goes on")
    func cancellingConsumerStopsWork() async throws {
        let outcome = try await FixtureProcess.run(["cancel-stream"], waitingFor: "a cancelled stream")
        #expect(outcome.line("was busy") == "was busy true consumer got error", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("workers") == "workers 2 idle after cancel true")
        #expect(outcome.line("after") == "after [1, 4, 9]")
    }

    @Test("the README's snippets compile on the main actor (where @main code runs) and print what it says")
    func readmeSnippets() async throws {
        let outcome = try await FixtureProcess.run(["readme"], waitingFor: "the README snippets")
        #expect(
            outcome.lines == [
                "[1, 4, 9, 16, 25, 36, 49, 64]", "[1024, 9]", "332833500", "332833500", "332833500", "144",
            ],
            "\(outcome.stderr)")
    }

    @Test("starmap with tuple arguments, map with a struct input")
    func starmap() async throws {
        let outcome = try await FixtureProcess.run(["starmap"], waitingFor: "starmap")
        #expect(outcome.lines == ["[1024, 9, 1]", "[6.0, 2.0]"], "\(outcome.stderr)")
    }

    @Test("map-reduce folds in order or as results arrive, and throws at a failed item")
    func mapReduce() async throws {
        let outcome = try await FixtureProcess.run(["map-reduce"], waitingFor: "map-reduce")
        #expect(outcome.line("ordered") == "ordered true", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("unordered sum") == "unordered sum 333328333350000")
        #expect(
            outcome.line("code=").hasPrefix(
                "code=function threw index=50 type=mp_fixture.FailOn.Boom remote=boom at 50"))
    }
}
