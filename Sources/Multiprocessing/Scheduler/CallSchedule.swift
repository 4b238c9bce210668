/// Which items of one call still have to be handed out, in what chunks, and whether the
/// call may hand out more right now. Pure logic.
///
/// Items are handed out front to back in chunks the ``ChunkSizer`` sizes. The input may
/// be of unknown length (a lazy sequence): then the schedule learns the total when the
/// source runs dry. A chunk given back (its worker died before starting it) is handed out
/// again, as it was encoded, before any new items.
///
/// Streams are bounded by a window: chunks handed out plus chunks whose results the
/// consumer has not yet taken may not exceed ``window``. A slow consumer therefore stops
/// new work from being sent (backpressure), and memory stays bounded whatever the
/// input's length. `map` has no window: its input is already in memory.
struct CallSchedule<Payload>: Sendable where Payload: Sendable {
    /// A chunk handed out: its id, its items and its encoded frame (kept so the chunk can be
    /// re-sent to another worker without asking the source again).
    struct Chunk: Sendable {
        let id: UInt64
        let range: Range<Int>
        let payload: Payload
    }

    /// The number of items, once known (at once for `map`, at the end for a lazy input).
    private(set) var totalItems: Int?
    /// The index of the next item the source will produce.
    private(set) var nextIndex = 0
    private(set) var sourceEnded = false
    private var requeued: [Chunk] = []
    private(set) var sizer: ChunkSizer
    /// Chunks handed out and not yet answered or given back.
    private(set) var outstandingChunks = 0
    /// Chunks answered whose results the consumer has not taken yet.
    private(set) var unconsumedChunks = 0
    /// The most chunks that may be outstanding plus unconsumed; `nil` for no bound.
    let window: Int?
    /// The compute time of the last answered chunk (nanoseconds), once one is answered.
    private(set) var lastChunkNanos: UInt64?

    init(
        totalItems: Int?, workers: Int, fixedChunkSize: Int?, window: Int?,
        largestChunk: Int = ChunkSizer.maximumChunkItems
    ) {
        self.totalItems = totalItems
        self.window = window
        sizer = ChunkSizer(workers: workers, fixedSize: fixedChunkSize, largestChunk: largestChunk)
        if totalItems == 0 { sourceEnded = true }
    }

    /// Whether nothing is left to hand out (no given-back chunk, the source is dry).
    var isExhausted: Bool {
        requeued.isEmpty && (sourceEnded || (totalItems.map { nextIndex >= $0 } ?? false))
    }

    /// Whether every item has been handed out and answered.
    var isSettled: Bool { isExhausted && outstandingChunks == 0 }

    /// Whether chunks handed out plus chunks not yet consumed fill the window.
    var windowIsFull: Bool {
        guard let window else { return false }
        return outstandingChunks + unconsumedChunks >= window
    }

    /// A given-back chunk to hand out again, if any (the window does not hold these back:
    /// they were counted when first handed out).
    mutating func takeRequeued() -> Chunk? {
        guard !requeued.isEmpty else { return nil }
        outstandingChunks += 1
        return requeued.removeFirst()
    }

    /// How many new items the next chunk should have, or `nil` when the source is dry or
    /// the window is full.
    mutating func nextChunkSize() -> Int? {
        guard !isExhausted, !windowIsFull else { return nil }
        let remaining = totalItems.map { $0 - nextIndex }
        let size = sizer.nextSize(remaining: remaining)
        return size > 0 ? size : nil
    }

    /// The source produced `count` items (starting at ``nextIndex``) for a chunk now handed out.
    mutating func handedOut(count: Int) {
        nextIndex += count
        outstandingChunks += 1
    }

    /// The source has no more items; the total is now known.
    mutating func endOfSource() {
        sourceEnded = true
        totalItems = nextIndex
    }

    /// A chunk's results arrived and were passed to the consumer.
    mutating func completed(_ range: Range<Int>, computeNanos: UInt64) {
        outstandingChunks -= 1
        if window != nil { unconsumedChunks += 1 }
        sizer.record(items: range.count, computeNanos: computeNanos)
        lastChunkNanos = computeNanos
    }

    /// A chunk failed as a whole (its worker died while running it); its failure was
    /// passed to the consumer like a result.
    mutating func abandoned(_ range: Range<Int>) {
        outstandingChunks -= 1
        if window != nil { unconsumedChunks += 1 }
    }

    /// The consumer took the results of `chunks` chunks.
    mutating func consumed(chunks: Int) {
        unconsumedChunks = max(0, unconsumedChunks - chunks)
    }

    /// A chunk handed out ended badly: `requeue` (the chunk itself, or what is left of
    /// it) goes out again first, and `failed` pieces of it were reported to the consumer.
    mutating func split(_ chunk: Chunk, requeue: [Chunk], failed: Int) {
        outstandingChunks -= 1
        requeued.append(contentsOf: requeue)
        if window != nil { unconsumedChunks += failed }
    }

}
