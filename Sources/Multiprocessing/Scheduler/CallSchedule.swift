/// Which items of one call still have to be handed out, and in what chunks. Pure logic.
///
/// Items are handed out front to back in chunks the ``ChunkSizer`` sizes. A chunk given
/// back (its worker died before starting it) is handed out again before any new items,
/// as it was cut.
struct CallSchedule: Sendable {
    let totalItems: Int
    private(set) var nextIndex = 0
    private var requeued: [Range<Int>] = []
    private(set) var sizer: ChunkSizer
    /// Chunks handed out and not yet answered or given back.
    private(set) var outstandingChunks = 0

    init(totalItems: Int, workers: Int, fixedChunkSize: Int?) {
        self.totalItems = totalItems
        sizer = ChunkSizer(workers: workers, fixedSize: fixedChunkSize)
    }

    /// Whether no items are waiting to be handed out.
    var isExhausted: Bool { requeued.isEmpty && nextIndex >= totalItems }

    /// The next chunk to hand out, or `nil` when none is waiting.
    mutating func takeChunk() -> Range<Int>? {
        if !requeued.isEmpty {
            outstandingChunks += 1
            return requeued.removeFirst()
        }
        guard nextIndex < totalItems else { return nil }
        let size = sizer.nextSize(remaining: totalItems - nextIndex)
        let range = nextIndex..<(nextIndex + size)
        nextIndex = range.upperBound
        outstandingChunks += 1
        return range
    }

    /// A chunk's results arrived.
    mutating func completed(_ range: Range<Int>, computeNanos: UInt64) {
        outstandingChunks -= 1
        sizer.record(items: range.count, computeNanos: computeNanos)
    }

    /// A chunk failed as a whole (its worker died while running it).
    mutating func abandoned(_ range: Range<Int>) {
        outstandingChunks -= 1
    }

    /// A chunk was never started: hand it out again first.
    mutating func giveBack(_ range: Range<Int>) {
        outstandingChunks -= 1
        requeued.append(range)
    }
}
