#if os(Linux)
/// What the supervisor tells the task that waits on a call.
enum CallEvent: Sendable {
    /// A chunk's results arrived (decode them from `payload` starting at `offset`).
    case results(
        Message.Result, range: Range<Int>, payload: [UInt8], offset: Int, worker: MultiprocessingError.WorkerIdentity)
    /// These items failed together: their worker died or timed out (after any retries),
    /// or their inputs could not be encoded.
    case chunkFailed(range: Range<Int>, MultiprocessingError)
    /// The input ran dry: the call has `total` items in all.
    case ended(total: Int)
    /// The whole call failed (its function could not be installed, the pool closed or
    /// was interrupted).
    case failed(MultiprocessingError)
    /// A chunk ran on a thread of this process (``ThreadEngine``): its outcome, not encoded.
    case computed(ComputedChunk)
}

/// What a call's input produced for one chunk.
enum ProducedChunk {
    /// `count` items, encoded as a task frame.
    case frame(count: Int, TaskFrame)
    /// `count` items that could not be encoded.
    case failed(count: Int, MultiprocessingError)
    /// `count` items for the threads engine (``ThreadEngine``), not encoded.
    case inProcess(count: Int, InProcessChunk)

    /// How many items the chunk holds.
    var count: Int {
        switch self {
        case .frame(let count, _), .failed(let count, _), .inProcess(let count, _): return count
        }
    }
}

/// One call (a `map`, a stream, an `apply`) as the supervisor sees it: type-erased, touched
/// only by the event loop's owner.
final class CallRecord: @unchecked Sendable {
    let id: UInt64
    /// The install frame: the function's type name and encoded value.
    let installFrame: [UInt8]
    var schedule: CallSchedule<TaskFrame>
    /// Takes up to `maxCount` items from the input, starting at item `firstIndex`, and
    /// encodes them as the task frame of chunk `chunkID`; `nil` when the input is dry.
    /// Called only by the loop's owner, in order: on the loop thread for a stream (see
    /// ``readsProgramInput``), possibly inline on the caller's thread for `map`.
    let produce: (_ chunkID: UInt64, _ firstIndex: Int, _ maxCount: Int) -> ProducedChunk?
    /// Hands events to the task that waits on the call, several at a time (see
    /// ``Supervisor/post(_:_:)``).
    let deliver: @Sendable ([CallEvent]) -> Void
    /// Events posted in this round of the event loop, not yet delivered.
    var outbox: [CallEvent] = []
    /// Called once when the supervisor forgets the call (it ends the caller's event stream).
    let onForget: @Sendable () -> Void
    /// For a stream: where its consumer counts the chunks it has taken (``nextChunkSize()``).
    let credit: StreamCredit?
    /// Failed attempts of items being retried, by the first input index of what failed.
    var attempts = RetryLedger()
    /// For progress output: the call's kind (`map`, `imap`, ...), and its counts.
    var name = "call"
    var done = 0
    var failed = 0
    var retried = 0
    /// Whether the call's chunks come from the program's own sequence (a stream), which
    /// only the loop thread reads (see ``Supervisor``'s `nextChunk`); `map`'s inputs are
    /// already in memory.
    var readsProgramInput = false
    let startNanos = Platform.monotonicNanos()
    var lastLineNanos: UInt64 = 0

    /// Whether a progress line is due: `interval` since the last one, or since the call
    /// started (both engines print them at the same pace).
    func progressLineDue(now: UInt64, interval: UInt64) -> Bool {
        now &- max(lastLineNanos, startNanos) >= interval
    }
    /// This call's own progress mode (already resolved), overriding the pool's.
    var progress: ProgressMode?

    /// The progress figures of this call now.
    var snapshot: ProgressSnapshot {
        ProgressSnapshot(
            name: name, done: done, total: schedule.totalItems, failed: failed, retried: retried,
            elapsedNanos: Platform.monotonicNanos() &- startNanos)
    }

    init(
        id: UInt64, installFrame: [UInt8], schedule: CallSchedule<TaskFrame>,
        produce: @escaping (UInt64, Int, Int) -> ProducedChunk?,
        deliver: @escaping @Sendable ([CallEvent]) -> Void,
        onForget: @escaping @Sendable () -> Void, credit: StreamCredit? = nil
    ) {
        self.credit = credit
        self.id = id
        self.installFrame = installFrame
        self.schedule = schedule
        self.produce = produce
        self.deliver = deliver
        self.onForget = onForget
    }
}
extension CallRecord {
    /// Takes the call's next chunk of new items (at most `budget`) from its input, for
    /// either engine: its id (from `nextChunkID`), its items and what the input produced.
    /// Items the input could not encode are failed here (``CallEvent/chunkFailed(range:_:)``
    /// through `post`) and the next ones are taken; when the input runs dry, the call's
    /// total is posted (``CallEvent/ended(total:)``). `nil`: the input is dry, or the
    /// call's window is full (``CallSchedule/isExhausted`` tells which).
    func takeNewChunk(
        atMost budget: Int, nextChunkID: inout UInt64, post: (CallEvent) -> Void
    ) -> (id: UInt64, range: Range<Int>, produced: ProducedChunk)? {
        while let size = nextChunkSize() {
            let chunkID = nextChunkID
            nextChunkID += 1
            let first = schedule.nextIndex
            guard let produced = produce(chunkID, first, min(size, budget)) else {
                schedule.endOfSource()
                post(.ended(total: schedule.nextIndex))
                return nil
            }
            let range = first..<(first + produced.count)
            schedule.handedOut(count: produced.count)
            if case .failed(_, let error) = produced {
                schedule.abandoned(range)
                post(.chunkFailed(range: range, error))
                continue
            }
            return (chunkID, range, produced)
        }
        return nil
    }
}
#endif
