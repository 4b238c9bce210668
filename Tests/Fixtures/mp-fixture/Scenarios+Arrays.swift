import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The array scenarios' function: appends its input to `JOURNAL_COUNTS` (one line per
/// computation, so the test counts what was computed), sleeps `sleepMicros`, throws for
/// the input named by `ARRAY_FAIL_AT` (read in the worker at each call, so that a rerun
/// without it does not change the function's state), returns `x*x + 1`.
struct ArrayWork: ParallelFunction {
    var sleepMicros: Int

    struct Failed: Error, CustomStringConvertible {
        var x: Int
        var description: String { "input \(x) fails on purpose" }
    }

    func callAsFunction(_ x: Int) throws -> Int {
        if let path = getenv("JOURNAL_COUNTS") {
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if fd >= 0 {
                var line = Array("\(x)\n".utf8)
                _ = write(fd, &line, line.count)
                close(fd)
            }
        }
        if let fail = getenv("ARRAY_FAIL_AT"), Int(String(cString: fail)) == x { throw Failed(x: x) }
        if sleepMicros > 0 { usleep(UInt32(sleepMicros)) }
        return x &* x &+ 1
    }
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runArrayScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "array-run":
            // args: count, mode (0 map, 1 imap, 2 imapUnordered, 3 mapReduce), sleep µs.
            // Env: the array's (SLURM_ARRAY_TASK_ID, MP_ARRAY_*), JOURNAL_COUNTS, ARRAY_FAIL_AT.
            // Prints "before", then (only in the task that reduces) the results, the items
            // taken from journals, and a second call's results.
            let count = args[0]
            let mode = args[1]
            let function = ArrayWork(sleepMicros: args.count > 2 ? args[2] : 0)
            let inputs = Array(0..<count)
            print("before")
            do {
                try await withProcessPool(workers: 2) { pool in
                    var results: [Int] = []
                    switch mode {
                    case 0:
                        results = try await pool.map(function, inputs)
                    case 1, 2:
                        var byIndex = [Int](repeating: -1, count: count)
                        var order: [Int] = []
                        for try await item in mode == 1
                            ? pool.imap(function, inputs) : pool.imapUnordered(function, inputs)
                        {
                            byIndex[item.index] = try item.get()
                            order.append(item.index)
                        }
                        if mode == 1 { print("order=\(list(order))") }
                        results = byIndex
                    default:
                        results = [try await pool.mapReduce(function, inputs, into: 0, ordered: false) { $0 += $1 }]
                    }
                    print("results \(results.map(String.init).joined(separator: ","))")
                    print("from_journal \(pool.itemsFromJournal)")
                    let second = try await pool.map(function, [1000, 1001])
                    print("second \(second.map(String.init).joined(separator: ","))")
                }
            } catch let error as MultiprocessingError {
                print("ERROR code=\(error.code) item=\(error.itemIndex.map(String.init) ?? "none") \(error.message)")
                exit(3)
            }
        default:
            return false
        }
        return true
    }
}
