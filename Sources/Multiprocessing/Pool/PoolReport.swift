/// What a pool did, from its creation until now (``ProcessPool/report()``): printable,
/// and readable field by field.
public struct PoolReport: Sendable, CustomStringConvertible {
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
        for worker in workers {
            lines.append(
                "  worker \(worker.slot) on \(worker.host): \(worker.items) items, busy \(ProgressSnapshot.duration(worker.busySeconds)) (\(Int((worker.utilisation * 100).rounded()))%)\(worker.lost ? ", lost with its node" : "")"
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
}

/// The figures behind a ``PoolReport``, kept by the supervisor (its event loop's owner).
struct PoolStatistics {
    let startNanos = Platform.monotonicNanos()
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

    init(workers: Int) {
        slotItems = Array(repeating: 0, count: workers)
        slotBusyNanos = Array(repeating: 0, count: workers)
        hosts = Array(repeating: Platform.hostName, count: workers)
    }

    /// A worker slot added after the pool started (a worker host on another node joined).
    mutating func addSlot(host: String) {
        slotItems.append(0)
        slotBusyNanos.append(0)
        hosts.append(host)
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

    func report() -> PoolReport {
        let elapsed = Double(Platform.monotonicNanos() &- startNanos) / 1e9
        return PoolReport(
            items: items, failures: failures, retries: retries, respawns: respawns, elapsedSeconds: elapsed,
            workers: slotItems.indices.map { slot in
                let busy = Double(slotBusyNanos[slot]) / 1e9
                return PoolReport.Worker(
                    slot: slot, host: hosts[slot], items: slotItems[slot], busySeconds: busy,
                    utilisation: elapsed > 0 ? busy / elapsed : 0, lost: lost.contains(slot))
            },
            slowestChunks: slowest.map { PoolReport.SlowChunk(items: $0.items, secondsPerItem: $0.nanosPerItem / 1e9) })
    }
}
