/// Where a worker was in its work: what its progress page says (or, for a worker on
/// another node, what its host read from the page after the worker exited). Pure data.
struct WorkerPosition: Equatable, Sendable {
    /// What the worker was doing with the item at ``offset``.
    enum Phase: Equatable, Sendable {
        /// Between chunks: it ran nothing, or has finished a chunk whose result it holds.
        case idle
        case decoding
        case running
        case encoding
    }

    /// The chunk it was on.
    var chunkID: UInt64
    var phase: Phase
    /// The item's offset within the chunk's inputs.
    var offset: Int
    /// When that item started (monotonic nanoseconds; 0 when not recorded).
    var startedNanos: UInt64 = 0

    /// A worker that was on nothing.
    static let idle = WorkerPosition(chunkID: 0, phase: .idle, offset: 0)
}

/// What becomes of the chunks a worker held when it is gone (it died, was stopped, or its
/// node was lost), and of the items that failed with it. Pure logic: the supervisor
/// (`Workers/Supervisor+LostWork.swift`) reads the worker's position and carries the
/// decisions out (re-sends, errors, retries).
enum LostWork {
    /// What becomes of one chunk the worker held.
    enum Fate: Equatable, Sendable {
        /// It goes back to its call as it was: never started, or run with its result still
        /// held or half written by the worker, or its call was cancelled.
        case requeue
        /// Run offsets `offsets` failed (or are retried); the rest of the chunk goes back in
        /// narrowed frames. `itemIndex` is the failed item's index, nil when the whole
        /// chunk failed (its node was lost, and with it the record of which item ran).
        case fail(offsets: Range<Int>, itemIndex: Int?, phase: WorkerPosition.Phase)
    }

    /// The fate of chunk `chunkID` (its task `task`), the `heldAt`-th (0: the oldest) of those the worker
    /// held, given where the worker was (`position`). `nodeLost`: the worker went with its
    /// node (no page was read: the first chunk in flight is the one that ran, since remote
    /// workers answer each chunk at once). `cancelled`: the pool stopped the worker because
    /// its call was cancelled, so no item fails.
    static func fate(
        of chunkID: UInt64, _ task: Message.Task, heldAt: Int, position: WorkerPosition, nodeLost: Bool,
        cancelled: Bool
    ) -> Fate {
        if nodeLost, heldAt == 0, !cancelled {
            return .fail(offsets: task.runStart..<task.runEnd, itemIndex: nil, phase: .running)
        }
        guard position.chunkID == chunkID, position.phase != .idle, !cancelled,
            task.runStart <= position.offset, position.offset < task.runEnd
        else { return .requeue }
        let k = position.offset
        return .fail(offsets: k..<(k + 1), itemIndex: task.firstIndex + k, phase: position.phase)
    }

    /// How a chunk in which offsets `failing` failed is settled.
    struct Settlement: Sendable {
        /// Run offsets to send again, each in a frame narrowed to it, in this order: the
        /// items before the failed ones, those after, then the failed ones when retried.
        var resend: [Range<Int>]
        /// The failed items are tried again (they are the last of ``resend``).
        var retried: Bool
        /// The item indices of the failed offsets.
        var failedItems: Range<Int>
        /// When not retried: the errors of the earlier attempts, oldest first.
        var earlierAttempts: [MultiprocessingError]
    }

    /// Settles offsets `failing` of `task` that failed with `error`: retried while the
    /// items' earlier attempts (in `attempts`) number fewer than `retries`, else failed
    /// for good; the rest of the chunk is sent again either way.
    static func settle(
        _ task: Message.Task, failing: Range<Int>, error: MultiprocessingError, retries: Int,
        attempts: inout RetryLedger
    ) -> Settlement {
        var resend: [Range<Int>] = []
        if task.runStart < failing.lowerBound { resend.append(task.runStart..<failing.lowerBound) }
        if failing.upperBound < task.runEnd { resend.append(failing.upperBound..<task.runEnd) }
        let items = (task.firstIndex + failing.lowerBound)..<(task.firstIndex + failing.upperBound)
        switch attempts.failed(firstIndex: items.lowerBound, error, retries: retries) {
        case .retry:
            resend.append(failing)
            return Settlement(resend: resend, retried: true, failedItems: items, earlierAttempts: [])
        case .giveUp(let earlier):
            return Settlement(resend: resend, retried: false, failedItems: items, earlierAttempts: earlier)
        }
    }
}

/// The failed attempts of one call's items being retried, by the first input index of
/// what failed. Pure data.
struct RetryLedger: Sendable {
    enum Decision: Sendable {
        /// Try the items again (the attempt is recorded).
        case retry
        /// No attempt is left: fail them, naming the earlier attempts (now forgotten).
        case giveUp(earlier: [MultiprocessingError])
    }

    private var attempts: [Int: [MultiprocessingError]] = [:]

    /// The items from `firstIndex` failed with `error`: retry them while they have failed
    /// fewer than `retries` times before.
    mutating func failed(firstIndex: Int, _ error: MultiprocessingError, retries: Int) -> Decision {
        let earlier = attempts[firstIndex] ?? []
        guard earlier.count < retries else {
            attempts[firstIndex] = nil
            return .giveUp(earlier: earlier)
        }
        attempts[firstIndex] = earlier + [error]
        return .retry
    }

    /// How many failed attempts of the items from `firstIndex` are recorded.
    func attemptCount(firstIndex: Int) -> Int { attempts[firstIndex]?.count ?? 0 }
}
