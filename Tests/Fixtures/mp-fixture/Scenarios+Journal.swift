import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The journal scenarios' function: appends its input to `countFile` (O_APPEND, one line
/// per computation, so the test counts what was computed), sleeps, returns `x*x + state`.
struct JournalWork: ParallelFunction {
    var state: Int
    var countFile: String
    var sleepMicros: Int

    func callAsFunction(_ x: Int) -> Int {
        let fd = open(countFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if fd >= 0 {
            var line = Array("\(x)\n".utf8)
            _ = write(fd, &line, line.count)
            close(fd)
        }
        if sleepMicros > 0 { usleep(UInt32(sleepMicros)) }
        return x &* x &+ state
    }
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runJournalScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "journal-run":
            // args: count, state, sleep µs, mode (0 map, 1 imap, 2 imapUnordered, 3 mapReduce,
            // 4 applyAsync), chunk size (0 auto), inputs from this index get +1000 (-1: none).
            // Env: MP_JOURNAL (the journal), JOURNAL_COUNTS (the computation log).
            let count = args[0]
            let mode = args[3]
            let changeFrom = args.count > 5 ? args[5] : -1
            let inputs = (0..<count).map { changeFrom >= 0 && $0 >= changeFrom ? $0 + 1000 : $0 }
            let function = JournalWork(
                state: args[1], countFile: String(cString: getenv("JOURNAL_COUNTS")), sleepMicros: args[2])
            let chunk = args[4] == 0 ? nil : args[4]
            var results: [Int] = []
            var order: [Int] = []
            let reused = try await withProcessPool(workers: 2) { pool in
                switch mode {
                case 0:
                    results = try await pool.map(function, inputs, chunkSize: chunk)
                case 1, 2:
                    var byIndex = [Int](repeating: -1, count: count)
                    for try await item
                        in (mode == 1
                        ? pool.imap(function, inputs, chunkSize: chunk)
                        : pool.imapUnordered(function, inputs, chunkSize: chunk))
                    {
                        byIndex[item.index] = try item.get()
                        order.append(item.index)
                    }
                    results = byIndex
                case 3:
                    let sum = try await pool.mapReduce(function, inputs, into: 0, chunkSize: chunk) { $0 += $1 }
                    results = [sum]
                default:
                    let pending = inputs.map { pool.applyAsync(function, $0) }
                    for call in pending { results.append(try await call.value) }
                }
                return pool.itemsFromJournal
            }
            print("results \(results.map(String.init).joined(separator: ","))")
            if mode == 1 { print("order=\(list(order))") }
            print("from_journal \(reused)")
            return true
        default: return false
        }
    }
}
