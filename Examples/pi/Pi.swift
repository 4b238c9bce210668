import ArgumentParser
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Counts the hits of one chunk of the Monte-Carlo pi estimate. The generator is fixed
/// (xorshift64, seeded per chunk) so every language gets the same count.
struct CountHits: ParallelFunction {
    /// Samples per chunk: the function's captured state, sent to each worker once.
    var samples: Int

    struct ChunkResult: Codable, Sendable {
        var hits: UInt64
        var node: String
    }

    func callAsFunction(_ chunk: UInt64) -> ChunkResult {
        var x = (chunk &+ 1) &* 0x9E37_79B9_7F4A_7C15
        var hits: UInt64 = 0
        for _ in 0..<samples {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            let u = x >> 33
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            let v = x >> 33
            if u &* u &+ v &* v < 1 << 62 { hits += 1 }
        }
        return ChunkResult(hits: hits, node: Self.nodeName)
    }

    /// The Slurm node name, else the short host name.
    static let nodeName: String = {
        if let name = getenv("SLURMD_NODENAME") { return String(cString: name) }
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        let host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(host.split(separator: ".").first ?? "localhost")
    }()
}

@main
struct Pi: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimates pi with a Monte-Carlo map over a process pool, reducing the hits in this process.")

    @Option(help: "Number of chunks (items of the map).")
    var chunks = 64

    @Option(help: "Samples per chunk.")
    var samples = 1_000_000

    @Option(help: "Worker processes (default: the CPUs this job may use).")
    var workers: Int?

    @Flag(help: "Print one JSON object instead of a sentence.")
    var json = false

    @Option(
        help: "A journal file: finished chunks are kept there, and a rerun takes them instead of computing them again.")
    var journal: String?

    @Flag(help: "Show progress on stderr: a bar on a terminal, timestamped lines in a Slurm output file.")
    var progress = false

    @Option(help: "Write a timeline of every chunk on every worker: a Chrome trace here, its .html picture beside it.")
    var timeline: String?

    func validate() throws {
        guard chunks >= 1 else { throw ValidationError("--chunks must be at least 1") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
    }

    func run() async throws {
        Multiprocessing.bootstrap()  // a worker process never returns from here
        let start = ContinuousClock.now
        do {
            // Map the chunks over the pool and reduce the hits here, as they arrive:
            // no list of all the results is ever kept.
            var options = ProcessPool.Options()
            options.progress = progress ? .automatic : .off
            options.journalPath = journal  // MP_JOURNAL in the environment, when not given
            options.timelinePath = timeline  // MP_TIMELINE in the environment, when not given
            let (hits, nodes, workerCount, fromJournal) = try await withProcessPool(workers: workers, options: options)
            { pool in
                let tally = try await pool.mapReduce(
                    CountHits(samples: samples), 0..<UInt64(chunks), into: (hits: UInt64(0), nodes: Set<String>()),
                    ordered: false
                ) { tally, chunk in
                    tally.hits += chunk.hits
                    tally.nodes.insert(chunk.node)
                }
                if progress { printToStandardError(await pool.report().description) }
                return (tally.hits, tally.nodes.sorted(), pool.workerCount, pool.itemsFromJournal)
            }
            let total = chunks * samples
            let pi = 4 * Double(hits) / Double(total)
            let elapsed = start.duration(to: .now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if json {
                let nodeList = nodes.map { "\"\($0)\"" }.joined(separator: ",")
                print(
                    "{\"hits\":\(hits),\"samples\":\(total),\"pi\":\(pi),\"workers\":\(workerCount),\"nodes\":[\(nodeList)],\"seconds\":\(seconds),\"computed\":\(chunks - fromJournal),\"from_journal\":\(fromJournal)}"
                )
            } else {
                print(
                    "pi ≈ \(pi) (\(hits) hits of \(total) samples, \(workerCount) workers on \(nodes.joined(separator: ", ")), \(seconds) s)"
                )
            }
        } catch let error as MultiprocessingError {
            printToStandardError("pi: \(error.message)")
            throw ExitCode(1)
        }
    }
}

/// Writes a line to standard error.
func printToStandardError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
