// mp-bench: the workloads of the benchmark suite, one run per invocation, one line of
// JSON on stdout. The Python peer (Benchmarks/python/bench.py) runs the same workloads
// with the same flags and prints the same JSON; Benchmarks/run.py runs both, interleaved.

import ArgumentParser
import Multiprocessing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - The workloads' arithmetic (all UInt64, wrapping)

@inline(__always) func seed(_ k: UInt64) -> UInt64 { (k &+ 1) &* 0x9E37_79B9_7F4A_7C15 }

@inline(__always) func step(_ x: UInt64) -> UInt64 {
    var x = x
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    return x
}

func spin(_ k: UInt64, _ n: Int) -> UInt64 {
    var x = seed(k)
    for _ in 0..<n { x = step(x) }
    return x
}

func imbalancedIterations(_ i: Int, base: Int) -> Int { base * (1 + (i * 7919) % 100) }

// MARK: - Functions the workers run

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

struct Spin: ParallelFunction {
    var iterations: Int
    func callAsFunction(_ k: UInt64) -> UInt64 { spin(k, iterations) }
}

struct SpinImbalanced: ParallelFunction {
    var base: Int
    func callAsFunction(_ i: Int) -> UInt64 { spin(UInt64(i), imbalancedIterations(i, base: base)) }
}

struct ByteSum: ParallelFunction {
    func callAsFunction(_ bytes: [UInt8]) -> Int { bytes.count + Int(bytes.first ?? 0) }
}

struct Nothing: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x }
}

struct PiChunk: ParallelFunction {
    var samples: Int
    func callAsFunction(_ chunk: UInt64) -> UInt64 {
        var x = seed(chunk)
        var hits: UInt64 = 0
        for _ in 0..<samples {
            x = step(x)
            let u = x >> 33
            x = step(x)
            let v = x >> 33
            if u &* u &+ v &* v < 1 << 62 { hits += 1 }
        }
        return hits
    }
}

/// A shared next-item counter for the task-group baseline.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

// MARK: - The command

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mp-bench", abstract: "Runs one benchmark workload and prints one line of JSON.")

    @Option(
        help: "tiny-map, tiny-map-c1, latency, cpu-bound, imbalanced, startup, large-args, mapreduce-pi, hash-files")
    var workload: String

    @Option(help: "Workers; 0 runs sequentially in this process (engine seq).")
    var workers = 2

    @Option(
        help:
            "process (default): the pool's worker processes; threads: the pool's threads engine; taskgroup (cpu-bound, imbalanced, hash-files): a hand-written task group, the baseline with no pool at all."
    )
    var engine = "process"

    /// The pool's options for `--engine`.
    var poolOptions: ProcessPool.Options {
        var options = ProcessPool.Options()
        options.engine = engine == "threads" ? .threads : .processes
        return options
    }

    @Option var items: Int?
    @Option(help: "startup: pools started and closed (default 20); the figures are their medians.")
    var trials: Int?
    @Option var chunksize: Int?
    @Option var iters = 12_000_000
    @Option var base = 80_000
    @Option var samples = 1_000_000
    @Option var size = 1 << 20
    @Option(help: "hash-files: the folder whose files are hashed (Benchmarks/run.py generates it).")
    var corpus: String?
    @Option(help: "Progress output during the timed region: off (default), bar or lines.")
    var progress = "off"

    @Option(help: "Journal the pool's calls to this file (replaced at the start, so the cost of writing is measured).")
    var journal: String?

    @Flag(name: .customLong("journal-keep"), help: "With --journal, keep the file: measures a resume from it.")
    var journalKeep = false

    @Option(help: "Write the pool's timeline to this file (and its picture beside it) when the pool closes.")
    var timeline: String?

    @Flag(help: "Use the default pool (no count in code): in a multi-node Slurm job it spans every node.")
    var nodes = false

    /// Enters worker mode first, as the library asks (a worker never returns from
    /// `bootstrap()`), and only then parses the arguments: a worker that parsed them first
    /// spent about 1.3 ms of CPU in ArgumentParser's reflection before its handshake, which
    /// `startup` counted against the pool (measured with `perf record` at 200 workers).
    static func main() async {
        Multiprocessing.bootstrap()
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    func run() async throws {
        var result = try await measure()
        result["lang"] = "swift"
        result["engine"] = workers == 0 ? "seq" : engine
        result["workload"] = workload
        result["workers"] = Self.poolWorkers.withLock { $0 } ?? workers
        if nodes { result["placement"] = "nodes" }
        print(Self.json(result))
    }

    func measure() async throws -> [String: Any] {
        switch workload {
        case "tiny-map", "tiny-map-c1":
            let count = items ?? (workload == "tiny-map" ? 1_000_000 : 100_000)
            let inputs = Array(0..<count)
            let chunk = workload == "tiny-map-c1" ? 1 : chunksize
            let (seconds, sum) = try await timedPool { pool in
                var sum: UInt64 = 0
                if let pool {
                    for v in try await pool.map(Square(), inputs, chunkSize: chunk) {
                        sum &+= UInt64(bitPattern: Int64(v))
                    }
                } else {
                    for x in inputs { sum &+= UInt64(bitPattern: Int64(x &* x)) }
                }
                return sum
            }
            return base(items: count, seconds: seconds, checksum: sum).merging([
                "us_per_item": seconds / Double(count) * 1e6
            ]) { $1 }
        case "latency":
            let count = items ?? 10_000
            let (seconds, sum) = try await timedPool { pool in
                var sum: UInt64 = 0
                for i in 0..<count {
                    let v = try await pool?.apply(Square(), i) ?? i &* i
                    sum &+= UInt64(bitPattern: Int64(v))
                }
                return sum
            }
            return base(items: count, seconds: seconds, checksum: sum).merging([
                "us_per_roundtrip": seconds / Double(count) * 1e6
            ]) { $1 }
        case "cpu-bound":
            let count = items ?? 64
            let inputs = (0..<UInt64(count)).map { $0 }
            let function = Spin(iterations: iters)
            let sequential = try await sequentialSeconds { inputs.reduce(0) { $0 &+ function($1) } }
            let (seconds, sum) = try await timedParallel(
                inputs, chunkSize: chunksize, ordered: true, function: function, threadsBody: { function($0) })
            return base(items: count, seconds: seconds, checksum: sum).merging([
                "efficiency_vs_seq": efficiency(sequential, seconds), "seq_seconds": sequential,
            ]) { $1 }
        case "imbalanced":
            let count = items ?? 200
            let function = SpinImbalanced(base: base)
            let inputs = Array(0..<count)
            let sequential = try await sequentialSeconds { inputs.reduce(0) { $0 &+ function($1) } }
            let (seconds, sum) = try await timedParallel(
                inputs, chunkSize: chunksize, ordered: false, function: function, threadsBody: { function($0) })
            return base(items: count, seconds: seconds, checksum: sum).merging([
                "efficiency_vs_seq": efficiency(sequential, seconds), "seq_seconds": sequential,
            ]) { $1 }
        case "startup":
            // Each trial: create the pool, one apply, close. `start_ms`: until that apply's
            // answer (every worker has shaken hands by then); `close_ms`: the close, until
            // every worker has exited and been reaped. Medians over the trials.
            let count = trials ?? 20
            var whole: [Double] = []
            var starts: [Double] = []
            var closes: [Double] = []
            for _ in 0..<count {
                let start = ContinuousClock.now
                var answered = start
                try await withProcessPool(workers: max(workers, 1), options: poolOptions) { pool in
                    _ = try await pool.apply(Nothing(), 1)
                    answered = ContinuousClock.now
                }
                let closed = ContinuousClock.now
                whole.append(seconds(start, closed))
                starts.append(seconds(start, answered))
                closes.append(seconds(answered, closed))
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            return base(items: count, seconds: median(whole), checksum: 20).merging([
                "ms_per_startup": median(whole) * 1e3, "start_ms": median(starts) * 1e3,
                "close_ms": median(closes) * 1e3,
            ]) { $1 }
        case "large-args":
            let count = items ?? 64
            let inputs = (0..<count).map { i in (0..<size).map { j in UInt8((i + j) % 256) } }
            let (seconds, sum) = try await timedPool { pool in
                var sum: UInt64 = 0
                if let pool {
                    for v in try await pool.map(ByteSum(), inputs, chunkSize: chunksize) { sum &+= UInt64(v) }
                } else {
                    for b in inputs { sum &+= UInt64(ByteSum()(b)) }
                }
                return sum
            }
            return base(items: count, seconds: seconds, checksum: sum).merging([
                "mb_per_s": Double(count * size) / 1e6 / seconds
            ]) { $1 }
        case "hash-files":
            return try await hashFiles()
        case "mapreduce-pi":
            let count = items ?? 64
            let function = PiChunk(samples: samples)
            let (seconds, hits) = try await timedPool { pool in
                if let pool {
                    return try await pool.mapReduce(function, 0..<UInt64(count), into: UInt64(0), ordered: false) {
                        $0 &+= $1
                    }
                }
                return (0..<UInt64(count)).reduce(0) { $0 &+ function($1) }
            }
            return base(items: count, seconds: seconds, checksum: hits).merging([
                "hits": hits, "samples_per_s": Double(count * samples) / seconds,
            ]) { $1 }
        default:
            throw ValidationError("unknown workload \(workload)")
        }
    }

    // MARK: - Timing

    func base(items: Int, seconds: Double, checksum: UInt64) -> [String: Any] {
        var result: [String: Any] = [
            "items": items, "seconds": seconds, "items_per_s": Double(items) / seconds, "checksum": String(checksum),
        ]
        if let rss = Self.idleWorkerRSS.withLock({ $0 }) { result["worker_rss_kib"] = rss }
        if let close = Self.closeSeconds.withLock({ $0 }) { result["close_seconds"] = close }
        if let report = Self.poolReport.withLock({ $0 }) { result.merge(Self.cpuFields(report)) { $1 } }
        return result
    }

    static let idleWorkerRSS = Mutex<Int?>(nil)
    /// The pool's real size (with --nodes, the sum over the nodes).
    static let poolWorkers = Mutex<Int?>(nil)
    /// How long the pool took to close after the timed region (it writes the timeline then).
    static let closeSeconds = Mutex<Double?>(nil)
    /// The pool's report, read after the timed region (for the CPU figures).
    static let poolReport = Mutex<PoolReport?>(nil)

    func efficiency(_ sequential: Double, _ parallel: Double) -> Double {
        let count = Self.poolWorkers.withLock { $0 } ?? workers
        return sequential / (parallel * Double(max(count, 1)))
    }

    func seconds(since start: ContinuousClock.Instant) -> Double { seconds(start, .now) }

    func seconds(_ start: ContinuousClock.Instant, _ end: ContinuousClock.Instant) -> Double {
        let d = start.duration(to: end)
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func sequentialSeconds(_ body: () -> UInt64) async throws -> Double {
        let start = ContinuousClock.now
        let sum = body()
        let elapsed = seconds(since: start)
        if sum == 42 { print("") }  // keep the work
        return elapsed
    }

    /// Times `body` with a warmed pool (engine process), or with none (workers 0).
    func timedPool(_ body: (ProcessPool?) async throws -> UInt64) async throws -> (Double, UInt64) {
        if workers == 0 {
            let start = ContinuousClock.now
            let sum = try await body(nil)
            return (seconds(since: start), sum)
        }
        var options = poolOptions
        options.progress = ProgressMode(rawValue: progress) ?? .off
        if let journal {
            if !journalKeep { unlink(journal) }
            options.journalPath = journal
        }
        options.timelinePath = timeline
        var bodyEnd = ContinuousClock.now
        let timed = try await withProcessPool(workers: nodes ? nil : workers, options: options) { pool in
            Self.poolWorkers.withLock { $0 = pool.workerCount }
            for _ in 0..<3 { _ = try await pool.map(Nothing(), [1, 2, 3, 4]) }  // warm
            Self.idleWorkerRSS.withLock { $0 = Self.workerRSS() }
            let start = ContinuousClock.now
            let sum = try await body(pool)
            let elapsed = seconds(since: start)
            let report = await pool.report()  // untimed, and not in the close time either
            Self.poolReport.withLock { $0 = report }
            bodyEnd = ContinuousClock.now
            return (elapsed, sum)
        }
        let close = seconds(since: bodyEnd)
        Self.closeSeconds.withLock { $0 = close }
        return timed
    }

    /// The pool (map or the unordered stream, on either engine), the task-group baseline
    /// (a task group taking items one by one from a shared counter), or sequential.
    func timedParallel<F: ParallelFunction, Input: Sendable>(
        _ inputs: [Input], chunkSize: Int?, ordered: Bool, function: F,
        threadsBody: @escaping @Sendable (Input) -> UInt64
    ) async throws -> (Double, UInt64) where F.Input == Input, F.Output == UInt64 {
        if engine == "taskgroup" && workers > 0 {
            let start = ContinuousClock.now
            let next = Counter()
            let sum = await withTaskGroup(of: UInt64.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var sum: UInt64 = 0
                        while true {
                            let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                            if i >= inputs.count { break }
                            sum &+= threadsBody(inputs[i])
                        }
                        return sum
                    }
                }
                return await group.reduce(0) { $0 &+ $1 }
            }
            return (seconds(since: start), sum)
        }
        return try await timedPool { pool in
            guard let pool else { return inputs.reduce(0) { $0 &+ threadsBody($1) } }
            if ordered {
                return try await pool.map(function, inputs, chunkSize: chunkSize).reduce(0) { $0 &+ $1 }
            }
            var sum: UInt64 = 0
            for try await item in pool.imapUnordered(function, inputs, chunkSize: chunkSize) { sum &+= try item.get() }
            return sum
        }
    }

    /// VmRSS of one idle worker (a direct child of this process). No Foundation here, so
    /// that the workers' memory is what a Foundation-free program's would be.
    static func workerRSS() -> Int? {
        let me = getpid()
        guard let dir = opendir("/proc") else { return nil }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == me, let status = readFile("/proc/\(pid)/status"),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
            else { continue }
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1])
        }
        return nil
    }

    static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One line of JSON, keys sorted; values are numbers or strings.
    static func json(_ object: [String: Any]) -> String {
        let fields = object.keys.sorted().map { key -> String in
            let value: String
            switch object[key] {
            case let v as String: value = "\"\(v)\""
            case let v as Double: value = v.isFinite ? "\(v)" : "null"
            case let v as Int: value = "\(v)"
            case let v as UInt64: value = "\(v)"
            default: value = "null"
            }
            return "\"\(key)\":\(value)"
        }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
