import Logging
import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Writes `lines` numbered lines of about 100 bytes to stderr, then returns its input;
/// the input `dies` then ends its worker with a `fatalError`.
struct Shout: ParallelFunction {
    var lines: Int
    var dies: Int
    func callAsFunction(_ x: Int) -> Int {
        let padding = String(repeating: "x", count: 80)
        for i in 0..<lines {
            var line = "shout \(x) \(i) \(padding) end\n"
            line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        }
        if x == dies { fatalError("deliberate crash in a worker after \(lines) lines") }
        return x
    }
}

/// Sets this process's open-file limit, soft and hard (lowering the hard limit cannot be undone).
func limitOpenFiles(_ limit: Int) {
    var value = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &value) == 0 else {
        fail("setrlimit(RLIMIT_NOFILE, \(limit)) failed: errno \(errno)")
    }
}

/// The kind of each open descriptor, counted: socket, pipe, memfd, pidfd, other.
func descriptorKinds() -> [String: Int] {
    var kinds: [String: Int] = [:]
    for entry in openDescriptors() {
        let target = entry.split(separator: ">", maxSplits: 1).last.map(String.init) ?? ""
        let kind =
            target.hasPrefix("socket:")
            ? "socket"
            : target.hasPrefix("pipe:")
                ? "pipe"
                : target.hasPrefix("/memfd:")
                    ? "memfd"
                    : target.contains("pidfd") ? "pidfd" : "other"
        kinds[kind, default: 0] += 1
    }
    return kinds
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runProcessScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "descriptors":
            // args: workers. This process's open descriptors with a pool of that size
            // running, against none: the parent's cost per worker, and of which kinds.
            try await withProcessPool(workers: 1) { pool in _ = try await pool.map(Square(), [1]) }
            try await Task.sleep(for: .milliseconds(50))
            let before = descriptorKinds()
            let workers = args[0]
            try await withProcessPool(workers: workers) { pool in
                _ = try await pool.map(Square(), Array(0..<1000))
                let during = descriptorKinds()
                let added = during.merging(before.mapValues { -$0 }, uniquingKeysWith: +).filter { $0.value != 0 }
                let total = added.values.reduce(0, +)
                print(
                    "workers \(pool.workerCount) descriptors added \(total) per worker \(Double(total) / Double(workers))"
                )
                print(
                    "kinds \(added.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
            }
        case "many-workers":
            // args: workers, open-file limit (soft and hard; 0 leaves it), items. Starts the
            // pool under that limit, runs a map, and says how it went.
            if args[1] > 0 { limitOpenFiles(args[1]) }
            let start = now()
            do {
                let pool = try await ProcessPool(workers: args[0])
                print("started \(pool.workerCount) workers")
                let most = openDescriptors().count
                let items = Array(0..<args[2])
                let out = try await pool.map(Square(), items)
                print("map count=\(out.count) sum=\(out.reduce(0, &+)) squares=\(items.reduce(0) { $0 &+ $1 &* $1 })")
                print("descriptors open with the pool \(most) under limit \(args[1])")
                await pool.close()
                print("children after close \(children().count)")
            } catch {
                print("pool failed: \(describe(error))")
            }
            print("seconds \(Int(now() - start))")
        case "last-words":
            // args: lines each item writes to stderr. Item 3 then dies of a fatalError.
            try await withProcessPool(workers: 2) { pool in
                var values: [String] = []
                var failures: [String] = []
                for try await item in pool.imap(Shout(lines: args[0], dies: 3), [0, 1, 2, 3, 4, 5], chunkSize: 1) {
                    switch item.result {
                    case .success(let value): values.append("\(value)")
                    case .failure(let error):
                        values.append("failed")
                        failures.append("\(item.index) \(describe(error))")
                    }
                }
                print("values=\(list(values))")
                for failure in failures { print("failed \(failure)") }
            }
        case "stop-reasons":
            // The log lines of workers the pool stopped itself: a timed-out item, a
            // cancelled stream, then the error of the timed-out item.
            LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
            var options = ProcessPool.Options()
            options.itemTimeout = .milliseconds(500)
            try await withProcessPool(workers: 2, options: options) { pool in
                for try await item in pool.imap(Busy(milliseconds: 60_000), [0], chunkSize: 1) {
                    if case .failure(let error) = item.result { print("timeout error: \(describe(error))") }
                }
            }
            try await withProcessPool(workers: 2) { pool in
                let consumer = Task {
                    for try await _ in pool.imap(Busy(milliseconds: 5000), [0, 1], chunkSize: 1) {}
                }
                for _ in 0..<200 {
                    try await Task.sleep(for: .milliseconds(50))
                    let busy = children().map(cpuTicks)
                    if busy.count == 2 && busy.allSatisfy({ $0 >= 5 }) { break }
                }
                consumer.cancel()
                _ = try? await consumer.value
                try await Task.sleep(for: .milliseconds(500))  // the stopped workers are reaped
                print("cancelled")
            }
        case "close-busy":
            // Closing a pool whose workers are deep in a computation: each must see its
            // channel close and exit at once, not wait for the SIGKILL after the grace period.
            let pool = try await ProcessPool(workers: 2)
            let running = Task { try await pool.map(Spin(), [0, 1], chunkSize: 1) }
            for _ in 0..<200 {
                try await Task.sleep(for: .milliseconds(50))
                let busy = children().map(cpuTicks)
                if busy.count == 2 && busy.allSatisfy({ $0 >= 5 }) { break }
            }
            let start = now()
            await pool.close()
            print("closed seconds=\(elapsed(since: start)) children=\(children().count)")
            _ = try? await running.value
        default: return false
        }
        return true
    }
}
