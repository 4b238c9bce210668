/// Chooses how many items go into the next chunk of a call. Pure logic.
///
/// Automatic chunking aims each chunk at about ``targetChunkNanos`` of work, measured:
/// workers report the compute time of every chunk, and the sizer keeps a moving
/// average of the cost of one item. Before the first report it ramps up (1, 2, 4, ...
/// items) so that a call of a few expensive items is not swallowed by one worker.
/// Toward the end of a call chunks shrink (guided self-scheduling: at most a
/// 1/(``shrinkFactor`` × workers) share of what is left), so uneven items balance, but
/// never below ``minimumChunkNanos`` of estimated work, so tiny items do not drown in
/// per-chunk overhead. A fixed size given by the user overrides all of this.
struct ChunkSizer: Sendable {
    /// About 2 ms of work per chunk: large against the ~50 µs a round trip costs on these
    /// machines (overhead under 3 %), small enough to balance and to notice a failure soon.
    static let targetChunkNanos: Double = 2_000_000
    /// Chunks are not shrunk below 200 µs of estimated work: below that the round trip
    /// is a large share of the chunk.
    static let minimumChunkNanos: Double = 200_000
    /// Each chunk takes at most 1/(shrinkFactor × workers) of the remaining items.
    static let shrinkFactor = 4
    /// An upper bound on items per chunk, whatever the estimate says (bounds frame size
    /// and the memory of one chunk in a worker).
    static let maximumChunkItems = 1 << 20
    /// Weight of the newest measurement in the moving average.
    static let smoothing = 0.3

    let workers: Int
    let fixedSize: Int?
    /// The most items one chunk may have (``maximumChunkItems`` for `map`; streams use less
    /// to bound their memory).
    let largestChunk: Int
    private(set) var nanosPerItem: Double?
    private var rampSize = 1

    init(workers: Int, fixedSize: Int?, largestChunk: Int = ChunkSizer.maximumChunkItems) {
        precondition(workers > 0 && largestChunk > 0)
        self.workers = workers
        self.fixedSize = fixedSize
        self.largestChunk = largestChunk
    }

    /// Feeds back a finished chunk: `items` items took `computeNanos` in the worker.
    mutating func record(items: Int, computeNanos: UInt64) {
        guard items > 0 else { return }
        let sample = max(Double(computeNanos) / Double(items), 1)
        if let current = nanosPerItem {
            nanosPerItem = current * (1 - Self.smoothing) + sample * Self.smoothing
        } else {
            nanosPerItem = sample
        }
    }

    /// The size of the next chunk. `remaining` is the number of items not yet handed out
    /// (`nil` for a stream of unknown length). Always at least 1 and at most `remaining`.
    mutating func nextSize(remaining: Int?) -> Int {
        let cap = min(remaining ?? Int.max, largestChunk)
        guard cap > 0 else { return 0 }
        if let fixedSize { return max(1, min(fixedSize, cap)) }
        let share =
            remaining.map { max(1, ($0 + Self.shrinkFactor * workers - 1) / (Self.shrinkFactor * workers)) } ?? Int.max
        guard let cost = nanosPerItem else {
            let size = min(rampSize, share, cap)
            rampSize = min(rampSize * 2, largestChunk)
            return max(1, size)
        }
        let byTarget = max(1, Int(min(Self.targetChunkNanos / cost, Double(largestChunk))))
        let floor = max(1, Int(min(Self.minimumChunkNanos / cost, Double(largestChunk))))
        let size = max(min(share, byTarget), floor)
        return max(1, min(size, cap))
    }
}
