import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// Spends `milliseconds` of its thread's CPU time (not wall time: a loaded machine does not
/// change how much CPU one item costs), then returns its input and the worker's pid.
struct BurnCPU: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> [Int] {
        let end = threadCPUSeconds() + Double(milliseconds) / 1000
        var v = UInt64(x)
        while threadCPUSeconds() < end {
            for _ in 0..<1000 { v = v &* 6_364_136_223_846_793_005 &+ 1 }
        }
        return [x + Int(v & 0), Int(getpid())]
    }
}

/// Sleeps `milliseconds` (no CPU), then returns its input and the worker's pid.
struct SleepItem: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> [Int] {
        usleep(UInt32(milliseconds * 1000))
        return [x, Int(getpid())]
    }
}

func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runParentScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "parent-cpu":
            // args: engine (0 processes, 1 threads), items, CPU milliseconds per item (a
            // negative value: sleep that long instead), maximumItemsPerWorker (0: none).
            // A map of one-item chunks on 2 workers, then the report's CPU fields.
            let threads = args.count > 0 && args[0] == 1
            let count = args.count > 1 ? args[1] : 24
            let milliseconds = args.count > 2 ? args[2] : 40
            var options = ProcessPool.Options()
            options.engine = threads ? .threads : .processes
            if args.count > 3, args[3] > 0 { options.maximumItemsPerWorker = args[3] }
            try await withProcessPool(workers: 2, options: options) { pool in
                let inputs = Array(0..<count)
                let out =
                    milliseconds >= 0
                    ? try await pool.map(BurnCPU(milliseconds: milliseconds), inputs, chunkSize: 1)
                    : try await pool.map(SleepItem(milliseconds: -milliseconds), inputs, chunkSize: 1)
                print("map processes=\(Set(out.map { $0[1] }).count) values=\(list(out.map { $0[0] }))")
                let report = await pool.report()
                let slots = report.workers.map { $0.cpu.map { "\($0.totalSeconds)" } ?? "nil" }
                print(
                    "cpu engine=\(report.engine) parent_user=\(report.parentCPU.userSeconds) parent_system=\(report.parentCPU.systemSeconds) parent_total=\(report.parentCPU.totalSeconds) workers_user=\(report.workersCPU.userSeconds) workers_system=\(report.workersCPU.systemSeconds) workers_total=\(report.workersCPU.totalSeconds) share=\(report.parentShare) respawns=\(report.respawns) slots=\(slots.joined(separator: ","))"
                )
                for line in report.description.split(separator: "\n") { print("report: \(line)") }
            }
        case "slow-consumer":
            // args: items, microseconds the consumer spends per item. imapUnordered of
            // one-item chunks on 2 workers; prints how often the pool's event-loop thread
            // was woken (its voluntary context switches) per item while the stream ran.
            let count = args.count > 0 ? args[0] : 400
            let micros = args.count > 1 ? args[1] : 1000
            try await withProcessPool(workers: 2) { pool in
                _ = try await pool.map(Square(), [1, 2, 3, 4])  // started and warm
                guard let loop = threadID(named: "mp-supervisor") else {
                    print("no thread named mp-supervisor")
                    return
                }
                let before = voluntarySwitches(loop)
                var sum = 0
                for try await item in pool.imapUnordered(Square(), Array(0..<count), chunkSize: 1) {
                    sum += try item.get()
                    usleep(UInt32(micros))
                }
                let after = voluntarySwitches(loop)
                print("stream items=\(count) sum=\(sum)")
                print("loop wakeups per item \(Double(after - before) / Double(count))")
            }
        default:
            return false
        }
        return true
    }
}

/// The kernel id of this process's thread named `name`, if any.
func threadID(named name: String) -> Int32? {
    guard let dir = opendir("/proc/self/task") else { return nil }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let id = Int32(tid), let comm = readText("/proc/self/task/\(tid)/comm") else { continue }
        if comm.trimmingSuffix() == name { return id }
    }
    return nil
}

/// `voluntary_ctxt_switches` of thread `tid` of this process: how often it went to sleep.
func voluntarySwitches(_ tid: Int32) -> Int {
    let status = readText("/proc/self/task/\(tid)/status") ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") } ?? ""
    return Int(line.split(separator: "\t").last.map(String.init)?.trimmingSuffix() ?? "") ?? -1
}

func readText(_ path: String) -> String? {
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

extension String {
    func trimmingSuffix() -> String {
        var text = self
        while let last = text.last, last == "\n" || last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
