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
                    let out = try await pool.map(
                        SlowNaN(milliseconds: 30, nanEvery: nanEvery), Array(0..<400), chunkSize: 1)
                    print("map returned count=\(out.count)")
                } catch let error as MultiprocessingError {
                    _ = try? await signaller.value
                    print(describe(error))
                    // Each result as received (SlowNaN returns its input or NaN), `-` where none came.
                    let partial = error.partialResults(as: Double.self)
                    let values = (partial ?? []).map { $0.map { $0.isNaN ? "nan" : String(Int($0)) } }
                    print(
                        "results received=\(partial?.compactMap { $0 }.count ?? -1) count=\(partial?.count ?? -1) values=\(optionalList(values))"
                    )
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
        case "close-and-join":
            // args: 0 work submitted in every way, then closeAndJoin; 1 the joining task is
            // cancelled while a long call runs.
            let pool = try await ProcessPool(workers: 2)
            if args.first == 1 {
                let long = pool.applyAsync(Sleep(milliseconds: 20_000), 0)
                let joiner = Task { await pool.closeAndJoin() }
                try await Task.sleep(for: .milliseconds(300))
                let cancelledAt = now()
                joiner.cancel()
                await joiner.value
                print("join returned seconds=\(elapsed(since: cancelledAt))")
                do {
                    _ = try await long.value
                    print("long call: returned")
                } catch {
                    print("long call: \(describe(error))")
                }
            } else {
                // Submitted before the join and not awaited until after it.
                let pending = (0..<6).map { pool.applyAsync(Sleep(milliseconds: 150), $0) }
                let crashing = pool.applyAsync(Crash(), 1)  // its worker dies during the wait
                let stream = pool.imap(Sleep(milliseconds: 20), Array(0..<40), chunkSize: 2)
                let consumer = Task {
                    var values: [Int] = []
                    for try await item in stream { values.append(try item.get()) }
                    return values
                }
                let joinStarted = now()
                let joiner = Task { await pool.closeAndJoin() }
                // Calls made once the join has begun fail (apply is awaited: it cannot
                // leave a call behind); the first one refused is the probe's.
                var refused: MultiprocessingError?
                while refused == nil && now() - joinStarted < 10 {
                    do {
                        _ = try await pool.apply(Square(), 3)
                    } catch let error as MultiprocessingError {
                        refused = error
                    }
                }
                print("probe after join began: \(refused.map(describe) ?? "none")")
                do {
                    _ = try await pool.applyAsync(Square(), 4).value
                    print("applyAsync after join began: ran")
                } catch let error as MultiprocessingError {
                    print("applyAsync after join began: code=\(error.code)")
                }
                do {
                    for try await _ in pool.imap(Square(), [5]) {}
                    print("imap after join began: ran")
                } catch {
                    print("imap after join began: code=\(error.code)")
                }
                await joiner.value
                // 6 calls of 150 ms on 2 workers take at least 450 ms.
                print("join waited seconds=\(elapsed(since: joinStarted))")
                var returned: [String] = []
                for call in pending { returned.append((try? await call.value).map(String.init) ?? "failed") }
                print("pending values=\(list(returned))")
                do {
                    _ = try await crashing.value
                    print("crashing call: returned")
                } catch {
                    print("crashing call: \(describe(error))")
                }
                let values = try await consumer.value
                print("stream values=\(list(values))")
            }
            var afterCode = "none"
            do {
                _ = try await pool.apply(Square(), 6)
            } catch let error as MultiprocessingError {
                afterCode = "\(error.code)"
            }
            print("after join: children \(children().count), calls \(afterCode)")
        default: return false
        }
        return true
    }
}
