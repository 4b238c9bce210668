/// The figures behind a ``PoolReport``, kept by the supervisor (its event loop's owner).
struct PoolStatistics {
    let startNanos = Platform.monotonicNanos()
    /// This process's CPU time when the pool was created.
    let startCPU = Platform.processCPUTime()
    /// The workers are threads of this process (the threads engine).
    let onThreads: Bool
    var items = 0
    var failures = 0
    var retries = 0
    var respawns = 0
    var slotItems: [Int]
    var slotBusyNanos: [UInt64]
    var hosts: [String]
    /// Slots whose node was lost.
    var lost: Set<Int> = []
    var slowest: [(items: Range<Int>, nanosPerItem: Double)] = []
    /// Per slot, the CPU time of its workers that have ended (read before they were reaped);
    /// `nil` for a slot on another node (not counted).
    var slotEndedCPU: [Platform.CPUSeconds?]

    init(workers: Int, onThreads: Bool = false) {
        self.onThreads = onThreads
        slotItems = Array(repeating: 0, count: workers)
        slotBusyNanos = Array(repeating: 0, count: workers)
        hosts = Array(repeating: Platform.hostName, count: workers)
        slotEndedCPU = Array(repeating: .zero, count: workers)
    }

    /// A worker slot added after the pool started (a worker host on another node joined).
    mutating func addSlot(host: String) {
        slotItems.append(0)
        slotBusyNanos.append(0)
        hosts.append(host)
        slotEndedCPU.append(nil)  // a remote worker: its CPU time is not seen from here
    }

    /// A worker of `slot` has ended, having used `cpu` (`nil`: it could not be read).
    mutating func workerEnded(slot: Int, cpu: Platform.CPUSeconds?) {
        guard let cpu, slot < slotEndedCPU.count, let ended = slotEndedCPU[slot] else { return }
        slotEndedCPU[slot] = ended + cpu
    }

    mutating func recordChunk(slot: Int, items range: Range<Int>, computeNanos: UInt64, failed: Int) {
        items += range.count
        failures += failed
        slotItems[slot] += range.count
        slotBusyNanos[slot] &+= computeNanos
        guard !range.isEmpty else { return }
        let perItem = Double(computeNanos) / Double(range.count)
        if slowest.count < 3 || perItem > slowest[slowest.count - 1].nanosPerItem {
            slowest.append((range, perItem))
            slowest.sort { $0.nanosPerItem > $1.nanosPerItem }
            if slowest.count > 3 { slowest.removeLast() }
        }
    }

    /// The report now. `liveCPU` is the CPU time so far of the workers still running (or
    /// exited and not yet reaped), by slot.
    func report(liveCPU: [(slot: Int, cpu: Platform.CPUSeconds)] = []) -> PoolReport {
        let elapsed = Double(Platform.monotonicNanos() &- startNanos) / 1e9
        let parent = Platform.processCPUTime() - startCPU
        var slotCPU = slotEndedCPU
        for (slot, cpu) in liveCPU where slot < slotCPU.count {
            if let sum = slotCPU[slot] { slotCPU[slot] = sum + cpu }
        }
        let workers = slotItems.indices.map { slot in
            let busy = Double(slotBusyNanos[slot]) / 1e9
            return PoolReport.Worker(
                slot: slot, host: hosts[slot], items: slotItems[slot], busySeconds: busy,
                utilisation: elapsed > 0 ? busy / elapsed : 0, lost: lost.contains(slot),
                cpu: slotCPU[slot].map(PoolReport.CPUTime.init))
        }
        return PoolReport(
            items: items, failures: failures, retries: retries, respawns: respawns, elapsedSeconds: elapsed,
            workers: workers,
            slowestChunks: slowest.map { PoolReport.SlowChunk(items: $0.items, secondsPerItem: $0.nanosPerItem / 1e9) },
            parentCPU: PoolReport.CPUTime(parent),
            workersCPU: PoolReport.CPUTime(slotCPU.compactMap { $0 }.reduce(.zero, +)),
            onThreads: onThreads)
    }
}
