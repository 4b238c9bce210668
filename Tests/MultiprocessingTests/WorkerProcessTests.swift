import Foundation
import Testing

@testable import Multiprocessing

/// What a worker process costs its parent and what the parent says when one ends:
/// descriptors per worker, a big pool under the common open-file limit, a dying worker's
/// last words, and the pool's own reason when it stopped a worker.
@Suite("Worker processes: descriptors, last words, stop reasons", .timeLimit(.minutes(5)))
struct WorkerProcessTests {
    #if os(Linux)
    @Test("a worker's last words never hold a newline, however its stderr arrives in reads")
    func lastWordsSplit() {
        let output = WorkerOutput(descriptor: -1)
        // What a crashing worker wrote, in the reads that once left a newline in the quote:
        // the runtime's message and an empty line together, then its crash report.
        for chunk in ["first line\n", "x.swift:1: Fatal error: deliberate\n\n", "*** Signal 4: Backtracing from 0x1\n"]
        {
            Array(chunk.utf8).withUnsafeBytes { output.received($0) }
        }
        #expect(output.lastWords == "\"first line\" / \"x.swift:1: Fatal error: deliberate\"")
    }
    #endif

    @Test("the parent holds at most 3 descriptors per local worker")
    func descriptorsPerWorker() async throws {
        // The pool's own descriptors (its event loop's) do not grow with its size: the
        // difference between two sizes is the cost of the workers.
        var added: [Int] = []
        for workers in [16, 32] {
            let outcome = try await FixtureProcess.run(
                ["descriptors", "\(workers)"], waitingFor: "a pool of \(workers) workers")
            let words = outcome.line("workers \(workers) descriptors added ").split(separator: " ")
            added.append(try #require(words.count > 4 ? Int(words[4]) : nil, "\(outcome.stdout)"))
        }
        let perWorker = Double(added[1] - added[0]) / 16
        #expect(perWorker <= 3, "\(added[0]) descriptors added for 16 workers, \(added[1]) for 32")
    }

    @Test("closing a pool ends workers busy in a computation at once (they watch their channel)")
    func closeWhileBusy() async throws {
        let outcome = try await FixtureProcess.run(["close-busy"], waitingFor: "a pool closed while computing")
        #expect(outcome.lines.count == 1 && outcome.int("children", on: "closed ") == 0, "\(outcome.transcript)")
        let seconds = try #require(outcome.seconds("seconds", on: "closed "), "\(outcome.transcript)")
        #expect(seconds < 1, "closing a pool of busy workers took \(seconds) s")
    }

    @Test("a 256-worker pool starts and runs a map under an open-file limit of 1,024 (soft and hard)")
    func manyWorkersUnderDefaultLimit() async throws {
        let outcome = try await FixtureProcess.run(
            ["many-workers", "256", "1024", "3000"], timeout: .seconds(240),
            waitingFor: "256 workers under ulimit -n 1024")
        #expect(outcome.lines.first == "started 256 workers", "\(outcome.stdout)\n\(outcome.stderr.suffix(2000))")
        #expect(outcome.line("map ").hasPrefix("map count=3000 "), "\(outcome.transcript.suffix(2000))")
        let squares = (0..<3000).reduce(0) { $0 + $1 * $1 }
        #expect(outcome.int("sum", on: "map ") == squares && outcome.int("squares", on: "map ") == squares)
        #expect(outcome.lines.contains("children after close 0"))
        #expect(outcome.status == 0)
    }

    @Test("under a limit too low for the pool, creation fails saying what is needed and what to do")
    func limitTooLow() async throws {
        let outcome = try await FixtureProcess.run(
            ["many-workers", "64", "100", "10"], waitingFor: "a pool of 64 workers under ulimit -n 100")
        let failure = outcome.line("pool failed: ")
        #expect(failure.hasPrefix("pool failed: code=spawn failed "), "\(outcome.stdout)")
        #expect(failure.contains("64 local workers need about "), "\(failure)")
        #expect(failure.contains("the limit is 100 (ulimit -n; hard limit 100)"), "\(failure)")
        #expect(failure.contains("`ulimit -n "), "\(failure)")
        #expect(outcome.stderr.isEmpty || !outcome.stderr.contains("Too many open files"), "\(outcome.stderr)")
    }

    @Test("a worker that dies of a fatalError: its last stderr lines are in the error, all its output reaches stderr")
    func lastWords() async throws {
        let lines = 2000
        let outcome = try await FixtureProcess.run(
            ["last-words", "\(lines)"], waitingFor: "a stream whose item 3 dies after writing to stderr")
        #expect(outcome.list("values") == ["0", "1", "2", "failed", "4", "5"], "\(outcome.transcript.prefix(2000))")
        let failure = outcome.line("failed 3 ")
        #expect(failure.hasPrefix("failed 3 code=worker died index=3 "), "\(outcome.stdout)")
        #expect(failure.contains("Fatal error: deliberate crash in a worker after \(lines) lines"), "\(failure)")
        #expect(failure.contains("was killed by signal"), "\(failure)")
        #expect(!failure.contains("Backtracing"), "the backtrace is not the reason: \(failure)")
        // Every line each item wrote reached this program's stderr once, whole, in order,
        // the dead worker's included.
        var seen: [Int: [Int]] = [:]
        for line in outcome.stderr.split(separator: "\n") where line.contains("shout") {
            let words = line.split(separator: " ")
            #expect(
                words.count == 5 && words[0] == "shout" && words[3].count == 80 && words[4] == "end",
                "a broken line: \(line)")
            guard words.count == 5, let item = Int(words[1]), let index = Int(words[2]) else { continue }
            seen[item, default: []].append(index)
        }
        for item in 0..<6 {
            #expect(seen[item] == Array(0..<lines), "item \(item): \(seen[item]?.count ?? 0) lines")
        }
        #expect(outcome.stderr.components(separatedBy: "Fatal error: deliberate crash").count == 2)
    }

    @Test("a worker the pool stopped (timeout, cancelled stream) is logged with the pool's reason, no OOM hint")
    func stopReasons() async throws {
        let outcome = try await FixtureProcess.run(["stop-reasons"], waitingFor: "a timeout and a cancelled stream")
        let lines = outcome.lines
        #expect(lines.contains("cancelled"), "\(outcome.stdout)")
        let timedOut = outcome.line("LOG notice worker stopped: its item timed out")
        #expect(timedOut.contains("per-item timeout of 0.5 s"), "\(outcome.stdout)")
        let error = outcome.line("timeout error: ")
        #expect(error.hasPrefix("timeout error: code=timed out index=0 "), "\(outcome.stdout)")
        #expect(error.contains("per-item timeout of 0.5 s"))
        let cancelled = lines.filter { $0.hasPrefix("LOG debug worker exited") && $0.contains("cancelled") }
        #expect(cancelled.count == 2, "\(outcome.stdout)")
        #expect(!outcome.stdout.contains("out-of-memory"), "\(outcome.stdout)")
    }
}
