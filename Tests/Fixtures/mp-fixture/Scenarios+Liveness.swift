import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

// Scenarios of issue 13: nothing waits forever when itemTimeout is set, one bad value fails
// one item, and every error arrives with its own code.

/// Appends one line to the file at `path` (O_APPEND: whole lines from any process).
func appendLine(_ path: String, _ line: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { return }
    let text = line + "\n"
    _ = text.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

func lineCount(_ path: String) -> Int {
    (readFile(path) ?? "").split(separator: "\n").count
}

/// An input whose `init(from:)` blocks for 20 s in a worker for the value 13.
struct SlowToDecode: Codable, Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int.self)
        if value == 13 && Multiprocessing.isWorker { sleep(20) }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

struct ReadSlowInput: ParallelFunction {
    func callAsFunction(_ x: SlowToDecode) -> Int { x.value }
}

/// An output whose `encode(to:)` blocks for 20 s in a worker for the value 13.
struct SlowToEncode: Codable, Sendable {
    var value: Int
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int.self) }
    init(_ value: Int) { self.value = value }
    func encode(to encoder: any Encoder) throws {
        if value == 13 && Multiprocessing.isWorker { sleep(20) }
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

struct MakeSlowOutput: ParallelFunction {
    func callAsFunction(_ x: Int) -> SlowToEncode { SlowToEncode(x) }
}

/// A value that refuses to be encoded or decoded where `bad` says, for the value 13.
struct Touchy: Codable, Sendable {
    enum Place: Int, Codable, Sendable { case none, encodeInParent, decodeInWorker, encodeInWorker, decodeInParent }
    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused" }
    }
    var value: Int
    var bad: Place

    init(_ value: Int, bad: Place) {
        self.value = value
        self.bad = bad
    }
    init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        value = try c.decode(Int.self)
        bad = try c.decode(Place.self)
        let here: Place = Multiprocessing.isWorker ? .decodeInWorker : .decodeInParent
        if value == 13 && bad == here { throw Refused() }
    }
    func encode(to encoder: any Encoder) throws {
        let here: Place = Multiprocessing.isWorker ? .encodeInWorker : .encodeInParent
        if value == 13 && bad == here { throw Refused() }
        var c = encoder.unkeyedContainer()
        try c.encode(value)
        try c.encode(bad)
    }
}

/// Returns its input as is, counting each run in a file.
struct EchoCounting: ParallelFunction {
    var runs: String
    func callAsFunction(_ x: Touchy) -> Touchy {
        appendLine(runs, "\(x.value)")
        return x
    }
}

/// Returns `bytes` bytes for the item `big`, a few bytes for the others.
struct Sized: ParallelFunction {
    var big: Int
    var bytes: Int
    var runs: String
    func callAsFunction(_ x: [UInt8]) -> [UInt8] {
        appendLine(runs, "\(x.first ?? 0)")
        return x.first == UInt8(big) ? [UInt8](repeating: 1, count: bytes) : x
    }
}

/// Creates a pool inside the worker, and lets the error out.
struct NestedPoolThrowing: AsyncParallelFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        _ = try await ProcessPool(workers: 1)
        return x
    }
}

/// For item 0: a thread writes half a result frame to the worker's channel, then stops the
/// worker (SIGSTOP) while it is idle.
struct WriteHalfFrameThenStop: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        if x == 0 {
            var thread = pthread_t()
            pthread_create(
                &thread, nil,
                { _ in
                    usleep(100_000)
                    // The frame header's magic and version, and a length: then nothing more.
                    let half: [UInt8] = [0x4D, 0x50, 3, 4, 0, 1, 0, 0, 9]
                    _ = half.withUnsafeBytes { write(3, $0.baseAddress, $0.count) }
                    kill(getpid(), SIGSTOP)
                    return nil
                }, nil)
            pthread_detach(thread)
        }
        return x * 2
    }
}

/// An initializer that exits the worker with status 4.
struct ExitingInitializer: WorkerInitializer {
    func initialize() { exit(4) }
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runLivenessScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "frozen-idle":
            // A worker stopped (SIGSTOP) while idle; the next call queues work to it.
            var options = ProcessPool.Options()
            options.itemTimeout = .seconds(1)
            try await withProcessPool(workers: 2, options: options) { pool in
                let pids = try await pool.map(Pid(), [0, 1], chunkSize: 1)
                kill(pids[0], SIGSTOP)
                let start = now()
                let out = try await pool.map(Sleep(milliseconds: 5), Array(0..<40), chunkSize: 1)
                print("map seconds=\(elapsed(since: start)) values=\(list(out))")
                let report = await pool.report()
                print("respawns \(report.respawns) failures \(report.failures)")
            }
            print("children after close \(children().count)")
        case "frozen-random":
            // args: runs. Freeze a random worker at a random moment of a short-item map; prints
            // each run's results (Sleep returns its input).
            var options = ProcessPool.Options()
            options.itemTimeout = .milliseconds(500)
            options.retries = 1
            for run in 0..<args[0] {
                try await withProcessPool(workers: 2, options: options) { pool in
                    let pids = try await pool.map(Pid(), [0, 1], chunkSize: 1)
                    let victim = pids[run % 2]
                    let delay = UInt32(Int.random(in: 0..<200_000))
                    let freezer = Task.detached {
                        usleep(delay)
                        kill(victim, SIGSTOP)
                    }
                    let out = try await pool.map(Sleep(milliseconds: 2), Array(0..<200), chunkSize: 1)
                    await freezer.value
                    print("run \(run) values=\(list(out))")
                }
            }
        case "slow-decode", "slow-encode":
            // An input's init(from:) or an output's encode(to:) blocks 20 s for item 13.
            var options = ProcessPool.Options()
            options.itemTimeout = .seconds(1)
            let start = now()
            try await withProcessPool(workers: 2, options: options) { pool in
                let results =
                    scenario == "slow-decode"
                    ? try await collect(pool.imap(ReadSlowInput(), (10..<20).map(SlowToDecode.init), chunkSize: 5)) {
                        $0
                    }
                    : try await collect(pool.imap(MakeSlowOutput(), Array(10..<20), chunkSize: 5)) { $0.value }
                print(results)
            }
            print("seconds=\(elapsed(since: start))")
        case "half-frame":
            // A worker writes half a frame and is stopped while idle; the next call goes to it.
            var options = ProcessPool.Options()
            options.itemTimeout = .seconds(1)
            try await withProcessPool(workers: 1, options: options) { pool in
                print("first \(try await pool.apply(WriteHalfFrameThenStop(), 0))")
                usleep(300_000)
                let start = now()
                print("second \(try await pool.apply(WriteHalfFrameThenStop(), 21)) seconds=\(elapsed(since: start))")
            }
        case "stalled":
            // No itemTimeout: a stopped worker is named in the report and the progress lines.
            var options = ProcessPool.Options()
            options.stallReportAfter = .seconds(1)
            options.progress = .lines
            options.progressLineInterval = .milliseconds(500)
            try await withProcessPool(workers: 2, options: options) { pool in
                let pids = try await pool.map(Pid(), [0, 1], chunkSize: 1)
                let call = Task { try await pool.map(Sleep(milliseconds: 20), Array(0..<20), chunkSize: 1) }
                usleep(100_000)
                kill(pids[0], SIGSTOP)
                usleep(2_500_000)
                let report = await pool.report()
                for line in report.description.split(separator: "\n") where line.contains("stalled") {
                    print(line.split(separator: "pid \(pids[0])").joined(separator: "pid P"))
                }
                kill(pids[0], SIGCONT)
                print("map values=\(list(try await call.value))")
            }
        case "bad-values":
            // One bad value among 200, at each place a value is encoded or decoded.
            try await withProcessPool(workers: 2) { pool in
                for place in [Touchy.Place.encodeInParent, .decodeInWorker, .encodeInWorker, .decodeInParent] {
                    // A file per case: work a failed map leaves running ends in its own file.
                    let runs = "/tmp/mp-fixture-runs-\(getpid())-\(place)"
                    defer { unlink(runs) }
                    let inputs = (0..<200).map { Touchy($0, bad: place) }
                    var values = [Int?](repeating: nil, count: inputs.count)
                    var failed: [String] = []
                    for try await item in pool.imap(EchoCounting(runs: runs), inputs, chunkSize: 50) {
                        switch item.result {
                        case .success(let value): values[item.index] = value.value
                        case .failure(let error): failed.append("\(item.index) \(describe(error))")
                        }
                    }
                    print("\(place): values=\(optionalList(values)) failed \(failed.count) runs \(lineCount(runs))")
                    for line in failed { print("  \(line)") }
                    do {
                        _ = try await pool.map(EchoCounting(runs: runs), inputs, chunkSize: 50)
                        print("  map: no error")
                    } catch let error as MultiprocessingError {
                        let partial = error.partialResults(as: Touchy.self) ?? []
                        print(
                            "  map: code=\(error.code) index=\(error.itemIndex.map(String.init) ?? "nil") kept \(partial.compactMap { $0 }.count)"
                        )
                    }
                }
            }
        case "too-large":
            // A 1 MiB frame limit; item 13's result (or item 7's input) is 2 MiB.
            var options = ProcessPool.Options()
            options.maximumFrameBytes = 1 << 20
            try await withProcessPool(workers: 2, options: options) { pool in
                for chunkSize in [1, 10] {
                    let runs = "/tmp/mp-fixture-runs-\(getpid())-\(chunkSize)"
                    defer { unlink(runs) }
                    var inputs = (0..<20).map { [UInt8(truncatingIfNeeded: $0), 0, 0] }
                    inputs[7] = [7] + [UInt8](repeating: 0, count: 2 << 20)
                    var firsts = [UInt8?](repeating: nil, count: inputs.count)
                    var failed: [String] = []
                    for try await item in pool.imap(
                        Sized(big: 13, bytes: 2 << 20, runs: runs), inputs, chunkSize: chunkSize)
                    {
                        switch item.result {
                        case .success(let output): firsts[item.index] = output.first
                        case .failure(let error): failed.append("\(item.index) \(describe(error))")
                        }
                    }
                    // The first byte of each result (its index), `-` where none came.
                    print(
                        "chunkSize \(chunkSize): firsts=\(optionalList(firsts)) failed \(failed.count) runs \(lineCount(runs))"
                    )
                    for line in failed { print("  \(line)") }
                }
                // Inputs of 600 KB fit a frame one by one but not four together: each chunk is
                // cut, and the items left over go in the next one, none lost or sent twice.
                let runs = "/tmp/mp-fixture-runs-\(getpid())-together"
                defer { unlink(runs) }
                let inputs = (0..<6).map { [UInt8($0)] + [UInt8](repeating: 0, count: 600_000) }
                var seen: [Int] = []  // the first byte of each result, in index order of arrival
                for try await item in pool.imap(Sized(big: 255, bytes: 0, runs: runs), inputs, chunkSize: 4) {
                    seen.append((try? item.get())?.first.map(Int.init) ?? -1)
                }
                let mapped = try await pool.map(Sized(big: 255, bytes: 0, runs: runs), inputs, chunkSize: 4)
                print(
                    "together: imap \(seen) map \(mapped.map { Int($0[0]) }) runs \(lineCount(runs))"
                )
            }
        case "nested-pool-error":
            try await withProcessPool(workers: 1) { pool in
                do {
                    _ = try await pool.apply(NestedPoolThrowing(), 0)
                } catch let error as MultiprocessingError {
                    print(describe(error))
                }
            }
        case "initializer-exit":
            var options = ProcessPool.Options()
            options.initializer = ExitingInitializer()
            do {
                try await withProcessPool(workers: 2, options: options) { _ in }
            } catch let error as MultiprocessingError {
                print(describe(error))
            }
        default:
            return false
        }
        return true
    }

    /// Each item of a stream as `index ok value` or `index code index message-prefix`.
    static func collect<Output>(_ results: Results<Output>, _ show: (Output) -> Int = { _ in 0 }) async throws
        -> [String]
    {
        var lines: [String] = []
        for try await item in results {
            switch item.result {
            case .success(let value): lines.append("\(item.index) ok \(show(value))")
            case .failure(let error):
                lines.append(
                    "\(item.index) code=\(error.code) index=\(error.itemIndex.map(String.init) ?? "nil") \(error.message.prefix(45))"
                )
            }
        }
        return lines
    }
}
