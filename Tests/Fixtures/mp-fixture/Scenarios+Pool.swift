import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Returns its input as a `Double` after `milliseconds`, or NaN (which JSON cannot hold)
/// for inputs that are multiples of `nanEvery` (0: never).
struct SlowNaN: ParallelFunction {
    var milliseconds: Int
    var nanEvery: Int
    func callAsFunction(_ x: Int) -> Double {
        usleep(UInt32(milliseconds * 1000))
        return nanEvery > 0 && x % nanEvery == 0 ? .nan : Double(x)
    }
}

/// Threads of this process named `mp-supervisor` (one per open pool).
func supervisorThreads() -> Int {
    var count = 0
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if readFile("/proc/self/task/\(name)/comm") == "mp-supervisor\n" { count += 1 }
    }
    return count
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runPoolScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "interrupt-results":
            // args: nanEvery. A map whose results file is FIXTURE_RESULTS, stopped by this
            // program's own SIGTERM once some results are in (as Slurm's time limit would).
            var options = ProcessPool.Options()
            options.interruptResultsPath = getenv("FIXTURE_RESULTS").map { String(cString: $0) }
            let nanEvery = args.first ?? 0
            try await withProcessPool(workers: 2, options: options) { pool in
                print("pool started")
                fflush(nil)
                let signaller = Task {
                    try await Task.sleep(for: .milliseconds(600))
                    kill(getpid(), SIGTERM)
                }
                do {
                    _ = try await pool.map(SlowNaN(milliseconds: 30, nanEvery: nanEvery), Array(0..<400), chunkSize: 1)
                    fail("the map was not interrupted")
                } catch let error as MultiprocessingError {
                    _ = try? await signaller.value
                    print(describe(error))
                    let partial = error.partialResults(as: Double.self) ?? []
                    let received = partial.enumerated().filter { $0.element != nil }
                    let nans = received.filter { $0.element!.isNaN }.count
                    let inPlace = received.allSatisfy { $0.element!.isNaN || $0.element! == Double($0.offset) }
                    print("received \(received.count) nan \(nans) in place \(inPlace && partial.count == 400)")
                    print("unwritten \(error.unwrittenResults.map(String.init) ?? "nil")")
                }
            }
            print("closed, children \(children().count)")
        case "drop-unclosed":
            // A pool dropped without close(): its workers must be reaped, not left as zombies.
            func useAndDrop() async throws {
                let pool = try await ProcessPool(workers: 2)
                _ = try await pool.map(Square(), Array(0..<10))
                // Nothing of the call is still in the air when the pool goes.
                try await Task.sleep(for: .milliseconds(300))
                print("children while open \(children().count)")
            }
            try await useAndDrop()
            let deadline = now() + 10
            while !children().isEmpty && now() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            while supervisorThreads() > 0 && now() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            print("children after drop \(children().count) supervisor threads \(supervisorThreads())")
        default: return false
        }
        return true
    }
}
