import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runTimelineScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "timeline-faults":
            // The timeline comes from MP_TIMELINE. One worker dies once (item 7, retried
            // elsewhere), one item times out twice (retried, then failed), the pool goes on.
            let marker = "/tmp/mp-fixture-timeline-crash-\(getpid())"
            defer { unlink(marker) }
            var options = ProcessPool.Options()
            options.retries = 1
            options.itemTimeout = .milliseconds(400)
            try await withProcessPool(workers: 2, options: options) { pool in
                let out = try await pool.map(CrashOnce(marker: marker, item: 7), Array(0..<20), chunkSize: 4)
                print("map values=\(list(out))")
                var outcomes: [String] = []
                for try await item in pool.imap(Busy(milliseconds: 60_000), [4], chunkSize: 1) {
                    outcomes.append((try? item.get()).map { "\($0)" } ?? "failed")
                }
                print("timeout item \(outcomes)")
                print("after \(try await pool.map(Square(), [5]))")
            }
        case "timeline-tiny":
            // args: items. A map of tiny one-item chunks; the path comes from
            // FIXTURE_TIMELINE into the options (MP_TIMELINE, when set too, loses).
            var options = ProcessPool.Options()
            options.timelinePath = getenv("FIXTURE_TIMELINE").map { String(cString: $0) }
            let count = args.first ?? 20_000
            try await withProcessPool(workers: 2, options: options) { pool in
                let out = try await pool.map(Square(), Array(0..<count), chunkSize: 1)
                print("map count=\(out.count) values=\(list(out))")
            }
        default:
            return false
        }
        return true
    }
}
