import Multiprocessing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An input that counts how often it is encoded, in this process: the threads engine must
/// never encode one. Its identity (its address) says whether the function got this very
/// object or a copy.
final class Shared: Codable, Sendable {
    static let encodes = Atomic<Int>(0)
    let value: Int

    init(_ value: Int) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        Shared.encodes.add(1, ordering: .relaxed)
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int.self)
    }
}

/// The address of its input, and the thread and process that ran it.
struct WhoRuns: ParallelFunction {
    struct Out: Codable, Sendable {
        var address: Int
        var value: Int
        var pid: Int32
        var thread: Int32  // the low bits of pthread_self(): distinct per live thread
    }
    func callAsFunction(_ x: Shared) -> Out {
        usleep(2_000)
        return Out(
            address: Int(bitPattern: UInt(bitPattern: ObjectIdentifier(x).hashValue)), value: x.value, pid: getpid(),
            thread: Int32(truncatingIfNeeded: pthread_self()))
    }
}

/// Appends its input to the file `STARTS_FILE` names when it starts, then works
/// `milliseconds` (so that a test can count the items started, in any process).
struct NoteStart: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        if let path = getenv("STARTS_FILE") {
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            let line = Array("\(x)\n".utf8)
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        return Busy(milliseconds: milliseconds)(x)
    }
}

/// Counts its runs in this process.
struct CountingInitializer: WorkerInitializer {
    static let runs = Atomic<Int>(0)
    var fail: Bool
    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused on purpose" }
    }
    func initialize() async throws {
        CountingInitializer.runs.add(1, ordering: .relaxed)
        if fail { throw Refused() }
    }
}

/// Threads of this process.
func threadCount() -> Int {
    var count = 0
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runThreadsScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "engine-where":
            // args: workers, 1 to set engine = .processes in code. Where the items ran, and
            // whether their inputs were encoded or copied.
            var options = ProcessPool.Options()
            if args.count > 1 && args[1] == 1 { options.engine = .processes }
            let threadsBefore = threadCount()
            try await withProcessPool(workers: args[0], options: options) { pool in
                let inputs = (0..<200).map { Shared($0) }
                let outs = try await pool.map(WhoRuns(), inputs, chunkSize: 5)
                // How many items saw the very object that was passed in (not a decoded copy).
                let same = zip(inputs, outs).filter {
                    Int(bitPattern: UInt(bitPattern: ObjectIdentifier($0).hashValue)) == $1.address
                }.count
                let pids = Set(outs.map(\.pid)).sorted()
                print("engine \(pool.engine) workers \(pool.workerCount) children \(children().count)")
                print(
                    "objects same=\(same) encodes=\(Shared.encodes.load(ordering: .relaxed)) values=\(list(outs.map(\.value)))"
                )
                print("ran pids=\(list(pids)) own=\(getpid()) threads=\(Set(outs.map(\.thread)).count)")
                print("threads added=\(threadCount() - threadsBefore)")
            }
            print("children after close \(children().count)")
        case "engine-timeout":
            var options = ProcessPool.Options()
            options.itemTimeout = .seconds(1)
            do {
                try await withProcessPool(workers: 2, options: options) { pool in
                    print("engine \(pool.engine) started")
                }
            } catch {
                print(describe(error))
            }
        case "engine-initializer":
            // args: 1 to make the initializer throw.
            var options = ProcessPool.Options()
            options.initializer = CountingInitializer(fail: args.first == 1)
            do {
                try await withProcessPool(workers: 3, options: options) { pool in
                    print("engine \(pool.engine) runs \(CountingInitializer.runs.load(ordering: .relaxed))")
                    print("map \(try await pool.map(Square(), [1, 2, 3]))")
                }
            } catch {
                print(describe(error))
                print("runs \(CountingInitializer.runs.load(ordering: .relaxed))")
            }
        case "cancel-starts":
            // 40 items of 300 ms, one per chunk; the consumer stops after 2 results. Counts
            // the items started in the 1.5 s after: none may start once the call is over.
            try await withProcessPool(workers: 2) { pool in
                let consumer = Task {
                    var got = 0
                    for try await _ in pool.imap(NoteStart(milliseconds: 300), Array(0..<40), chunkSize: 1) {
                        got += 1
                        if got == 2 { break }
                    }
                    return got
                }
                let got = try await consumer.value
                let stoppedAt = now()
                let path = String(cString: getenv("STARTS_FILE"))
                let startsAtStop = (readFile(path) ?? "").split(separator: "\n").count
                try await Task.sleep(for: .milliseconds(1500))
                let starts = (readFile(path) ?? "").split(separator: "\n").count
                print(
                    "consumer got \(got) new starts after stop \(starts - startsAtStop) starts-at-stop=\(startsAtStop)"
                )
                let before = now()
                print(
                    "after \(try await pool.map(Square(), [1, 2, 3])) seconds=\(elapsed(since: before)) since-stop=\(elapsed(since: stoppedAt))"
                )
                let cancelled = pool.applyAsync(NoteStart(milliseconds: 300), 100)
                try await Task.sleep(for: .milliseconds(50))
                cancelled.cancel()
                do {
                    print("cancelled call returned \(try await cancelled.value)")
                } catch {
                    print("cancelled: \(describe(error).prefix(14))")
                }
            }
        case "engine-stall":
            // One item of 1.5 s with stallReportAfter 300 ms: the report names its worker.
            var options = ProcessPool.Options()
            options.stallReportAfter = .milliseconds(300)
            try await withProcessPool(workers: 2, options: options) { pool in
                let map = Task { try await pool.map(Sleep(milliseconds: 1500), [7]) }
                try await Task.sleep(for: .milliseconds(900))
                print("stalled: \(await pool.report().stalled.first ?? "none")")
                print("map \(try await map.value)")
            }
        default:
            return false
        }
        return true
    }
}
