/// How many chunks one worker may hold at once. Pure logic, used by the process engine's
/// `pump()` (`Workers/Supervisor+Dispatch.swift`) and, for its batches, the threads engine.
enum QueueDepth {
    /// The one it runs and one waiting, so it never idles while its next chunk crosses the
    /// socket. More would hurt balance.
    static let chunksPerWorker = 2
    /// When chunks take less than ``shortChunkNanos`` of work (a fixed tiny chunk size), a
    /// worker may hold more than two, so that it reads a batch of tasks at once and answers
    /// them with one write: up to this many, about ``shortChunksQueuedNanos`` of work at the
    /// last chunk's pace, and while its chunks in flight hold less than its share of the
    /// pool's budget of task frames (``shortChunksBudget(workers:)``).
    static let chunksPerWorkerForShortChunks = 128
    static let shortChunkNanos: UInt64 = 50_000
    static let shortChunksQueuedNanos: UInt64 = 1_000_000
    static let shortChunksQueuedBytes = 1 << 20
    /// The least a worker may queue of short chunks however many workers share the
    /// pool's budget (``shortChunksBudget(workers:)``): two 32 KiB automatic chunks.
    static let minimumShortChunksQueuedBytes = 64 << 10

    /// The bytes of short chunks one worker may hold beyond ``chunksPerWorker``: the pool's
    /// budget is two workers' worth (``shortChunksQueuedBytes`` each), shared, between
    /// ``minimumShortChunksQueuedBytes`` and ``shortChunksQueuedBytes`` a worker. Per worker
    /// it would grow with the pool: 200 workers held 200 MiB of tasks, nearly all of a
    /// 30 M-item map encoded at once into fresh pages.
    static func shortChunksBudget(workers: Int) -> Int {
        let share = shortChunksQueuedBytes * chunksPerWorker / max(workers, 1)
        return min(shortChunksQueuedBytes, max(share, minimumShortChunksQueuedBytes))
    }

    /// The most chunks a worker may hold, when the call handed out first last took
    /// `lastChunkNanos` per chunk (nil: none answered yet).
    static func maximum(lastChunkNanos: UInt64?) -> Int {
        guard let nanos = lastChunkNanos, nanos < shortChunkNanos else { return chunksPerWorker }
        let fitting = Int(shortChunksQueuedNanos / max(nanos, 1))
        return max(chunksPerWorker, min(chunksPerWorkerForShortChunks, fitting))
    }

    /// Whether a worker holding `held` chunks whose task frames take `heldBytes` may take
    /// one more in the round that fills workers to `depth` chunks (every worker gets one
    /// before any gets a second, up to ``maximum(lastChunkNanos:)``): rounds up to
    /// ``chunksPerWorker`` always, later ones only while the frames in flight are under
    /// ``shortChunksBudget(workers:)`` for a pool of `workers`.
    static func admits(held: Int, heldBytes: Int, depth: Int, workers: Int) -> Bool {
        held < depth && (depth <= chunksPerWorker || heldBytes < shortChunksBudget(workers: workers))
    }

    /// How many chunks a thread of the threads engine takes at once after one of a call
    /// whose chunks last took `lastChunkNanos`: one, unless they are short; then as many as
    /// make about ``shortChunksQueuedNanos`` of work, at most ``chunksPerWorkerForShortChunks``.
    static func threadBatch(lastChunkNanos: UInt64?) -> Int {
        guard let nanos = lastChunkNanos, nanos < shortChunkNanos else { return 1 }
        let fitting = Int(shortChunksQueuedNanos / max(nanos, 1))
        return max(1, min(chunksPerWorkerForShortChunks, fitting))
    }
}
