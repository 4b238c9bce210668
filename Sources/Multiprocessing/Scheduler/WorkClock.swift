/// How long a worker has held the work it is on, and whether that is too long (past the
/// per-item timeout, or long enough to be named as stalled). Pure logic: the supervisor
/// reads the clocks and pages and acts on the answers.
///
/// A worker's clock starts when its oldest chunk in flight could start: when that chunk
/// was sent to the idle worker, or when the result before it was read. Decoding, running,
/// encoding and writing all count. The start of the item its progress page names, when
/// later, moves the clock forward, so a timeout is per item.
enum WorkClock {
    /// The work a worker holds: for how long, its items, its call.
    struct Held: Equatable, Sendable {
        var nanos: UInt64
        var items: Range<Int>
        var callID: UInt64
    }

    /// The work held, at `now`, by a worker whose oldest chunk in flight is `oldest` and
    /// whose clock started at `clockStartNanos`. `running`: the chunk in flight its page
    /// names (not idle), with the page's position.
    static func held(
        oldest: Message.Task, running: (task: Message.Task, position: WorkerPosition)?, clockStartNanos: UInt64,
        now: UInt64
    ) -> Held {
        var mark = clockStartNanos
        var current = oldest
        if let running {
            current = running.task
            let position = running.position
            if position.startedNanos > mark, current.runStart <= position.offset, position.offset < current.runEnd {
                mark = position.startedNanos
            }
        }
        return Held(nanos: now > mark ? now - mark : 0, items: current.itemRange, callID: current.callID)
    }

    /// Whether work held `heldNanos` is past the per-item timeout `limit`: its worker is stopped.
    static func isOverdue(heldNanos: UInt64, limit: UInt64) -> Bool { heldNanos > limit }

    /// Whether work held `heldNanos` is named as possibly stuck: held at least
    /// `reportAfterNanos`, and at least 20 times as long as the call's chunks have been
    /// taking (`typicalChunkNanos`, when one was answered).
    static func isStalled(heldNanos: UInt64, typicalChunkNanos: UInt64?, reportAfterNanos: UInt64) -> Bool {
        guard heldNanos >= reportAfterNanos else { return false }
        if let typicalChunkNanos, heldNanos / 20 < typicalChunkNanos { return false }
        return true
    }
}
