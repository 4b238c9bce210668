/// What a pool did, from its creation until now (``ProcessPool/report()``): printable,
/// and readable field by field.
public struct PoolReport: Sendable, CustomStringConvertible {
    /// CPU time, in seconds: user mode and kernel (system) mode.
    public struct CPUTime: Sendable, Equatable {
        /// Seconds spent running in user mode.
        public let userSeconds: Double
        /// Seconds the kernel spent on its behalf (system calls, page faults).
        public let systemSeconds: Double
        /// User plus system seconds.
        public var totalSeconds: Double { userSeconds + systemSeconds }

        init(_ seconds: Platform.CPUSeconds) {
            userSeconds = max(seconds.user, 0)
            systemSeconds = max(seconds.system, 0)
        }
    }

    /// One worker slot (a respawned worker keeps its slot).
    public struct Worker: Sendable {
        /// The slot number.
        public let slot: Int
        /// The host its workers ran on.
        public let host: String
        /// Items its workers answered.
        public let items: Int
        /// Seconds its workers spent computing items.
        public let busySeconds: Double
        /// `busySeconds` over the pool's elapsed time.
        public let utilisation: Double
        /// Its node was lost (a multi-node pool): the slot is empty for good.
        public let lost: Bool
        /// The CPU time of every worker that held the slot, ended ones included: for a
        /// worker process, its `utime` and `stime` (`/proc/<pid>/stat`, in steps of 10 ms),
        /// read when the report is made and, for a worker that exited or was recycled, just
        /// before it was reaped; for the threads engine, the slot's thread. `nil` for a slot
        /// on another node of a multi-node pool: the CPU time of remote workers is not
        /// counted (their node's kernel has it), nor in ``PoolReport/workersCPU``.
        public let cpu: CPUTime?
    }

    /// A chunk among the slowest per item.
    public struct SlowChunk: Sendable {
        /// The chunk's item indices (within its call).
        public let items: Range<Int>
        /// Seconds per item in that chunk.
        public let secondsPerItem: Double
    }

    /// Items answered (including failed ones).
    public let items: Int
    /// Items that failed (after any retries).
    public let failures: Int
    /// Retries of items whose worker died or timed out.
    public let retries: Int
    /// Workers started to replace workers that died or were recycled.
    public let respawns: Int
    /// Seconds since the pool was created.
    public let elapsedSeconds: Double
    /// Items per second over the pool's life.
    public var itemsPerSecond: Double { elapsedSeconds > 0 ? Double(items) / elapsedSeconds : 0 }
    /// Per worker slot.
    public let workers: [Worker]
    /// The slowest chunks per item (at most three), slowest first.
    public let slowestChunks: [SlowChunk]
    /// The CPU time this process used since the pool was created (`getrusage(RUSAGE_SELF)`):
    /// the whole process, every thread of it. That is the pool's own cost in the parent
    /// (its event loop, encoding inputs, decoding results, waking the tasks that await
    /// them), plus whatever else the program did meanwhile (consuming the results, other
    /// work), and, with the threads engine, the worker threads themselves (see
    /// ``parentShare``). Compare with ``workersCPU``: under Slurm the parent shares the
    /// workers' CPUs, so every second it spends is taken from a worker.
    public let parentCPU: CPUTime
    /// The CPU time of all the pool's workers since the pool was created, ended and
    /// recycled workers included: the sum of the slots' ``Worker/cpu``. Workers on other
    /// nodes are not counted.
    public let workersCPU: CPUTime
    /// The workers are threads of this process (``engine`` is ``ProcessPool/Engine/threads``),
    /// so ``parentCPU`` includes ``workersCPU``.
    let onThreads: Bool
    /// The share of the CPU time used since the pool was created that was not the workers'
    /// computing: ``parentCPU`` over ``parentCPU`` plus ``workersCPU`` for worker
    /// processes; ``parentCPU`` minus ``workersCPU``, over ``parentCPU``, for the threads
    /// engine. 0 when no CPU time was measured yet, and when no worker's time is counted
    /// (a multi-node pool: its workers are started by worker hosts, on every node, and
    /// their time is not seen from here).
    public var parentShare: Double {
        guard workers.isEmpty || workers.contains(where: { $0.cpu != nil }) else { return 0 }
        let parent = parentCPU.totalSeconds
        let workers = workersCPU.totalSeconds
        if onThreads { return parent > 0 ? max(parent - workers, 0) / parent : 0 }
        return parent + workers > 0 ? parent / (parent + workers) : 0
    }
    /// Workers that have held the same work far longer than chunks have been taking (at
    /// least ``ProcessPool/Options/stallReportAfter``, and 20 times the call's last chunk): which worker, which items, for how
    /// long. A worker stuck without ``ProcessPool/Options/itemTimeout`` shows up here.
    public internal(set) var stalled: [String] = []

    /// Several lines: the totals, then one line per worker slot and the slowest chunks.
    public var description: String {
        let rate = ProgressSnapshot.rate(itemsPerSecond)
        var lines = [
            "\(items) items in \(ProgressSnapshot.duration(elapsedSeconds)) (\(rate) items/s), \(failures) failed, \(retries) retried, \(respawns) respawns"
        ]
        let seconds = { (cpu: CPUTime) in Self.cpuSeconds(cpu.totalSeconds) }
        let split = { (cpu: CPUTime) in
            "user \(Self.cpuSeconds(cpu.userSeconds)), system \(Self.cpuSeconds(cpu.systemSeconds))"
        }
        let remote = workers.contains { $0.cpu == nil } ? ", remote ones not counted" : ""
        let threads = onThreads ? ", its worker threads included" : ""
        let parentLine = "  cpu: parent \(seconds(parentCPU)) (\(split(parentCPU)); the whole process\(threads))"
        if !workers.isEmpty && workers.allSatisfy({ $0.cpu == nil }) {
            lines.append(parentLine + "; workers on other nodes: not counted")
        } else {
            lines.append(
                parentLine
                    + ", workers \(seconds(workersCPU)) (\(split(workersCPU))\(remote)); parent share \(Self.percent(parentShare))"
            )
        }
        for worker in workers {
            let cpu = worker.cpu.map { ", cpu \(Self.cpuSeconds($0.totalSeconds))" } ?? ""
            lines.append(
                "  worker \(worker.slot) on \(worker.host): \(worker.items) items, busy \(ProgressSnapshot.duration(worker.busySeconds)) (\(Int((worker.utilisation * 100).rounded()))%)\(cpu)\(worker.lost ? ", lost with its node" : "")"
            )
        }
        for chunk in slowestChunks {
            let milliseconds = (chunk.secondsPerItem * 1e5).rounded() / 100
            lines.append(
                "  slow: items \(chunk.items.lowerBound)..<\(chunk.items.upperBound) at \(milliseconds) ms per item")
        }
        for line in stalled { lines.append("  stalled: \(line)") }
        return lines.joined(separator: "\n")
    }

    /// `0.42 s`, `12.3 s`, `2:05`: two decimals below 10 s (the parent's time is often small).
    static func cpuSeconds(_ seconds: Double) -> String {
        seconds < 10 ? "\((seconds * 100).rounded() / 100) s" : ProgressSnapshot.duration(seconds)
    }

    /// `6%`, or `0.4%` below 1 %.
    static func percent(_ share: Double) -> String {
        let value = share * 100
        return value < 1 && value > 0 ? "\((value * 10).rounded() / 10)%" : "\(Int(value.rounded()))%"
    }
}
