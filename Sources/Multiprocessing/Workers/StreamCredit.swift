import Synchronization

/// How the consumer of a stream gives its window room back (chunks whose results it has
/// taken, see ``CallSchedule``) without waking the engine for each one.
///
/// The consumer counts the chunks here (one atomic add); the engine takes the count
/// whenever it looks for the call's next chunk (on every result it reads, among others).
/// Only when the engine finds the window still full does it ask to be woken, and then not
/// for the next chunk but once the consumer has taken half a window more: then it wakes
/// the engine, once (``PoolEngine/consumed(callID:chunks:)`` with 0 chunks), which hands
/// out that much work at once. A consumer slower than the workers (results come faster
/// than they are consumed, the window is full) thus wakes the engine's thread once per
/// half window instead of once per chunk, and a fast one (the window is not what holds
/// the work back) never does: before, each consumed chunk cost a context switch of the
/// event loop and an `eventfd` write.
///
/// Half a window: the consumer still holds the other half of its results while the
/// workers compute the new work (at most two chunks each, see ``Supervisor``), so a
/// consumer slower than the workers never runs dry. Nothing can wait for ever: while
/// chunks are out, each result wakes the engine (which takes the count); when none are,
/// the whole window awaits the consumer, more than it needs to count to wake it.
///
/// Both sides use sequentially consistent operations: the engine asks to be woken and
/// then takes the count again, the consumer counts and then looks whether it is asked, so
/// at least one of them sees the other (no chunk's room is ever left untaken).
final class StreamCredit: Sendable {
    private let chunks = Atomic<Int>(0)
    /// 0: no wakeup wanted; else the count at which the consumer wakes the engine.
    private let wakeAt = Atomic<Int>(0)

    /// By the consumer: `count` more chunks taken. Returns whether the engine asked to be
    /// woken at this count (the caller then calls ``PoolEngine/consumed(callID:chunks:)``
    /// with 0 chunks).
    func add(_ count: Int) -> Bool {
        let total = chunks.add(count, ordering: .sequentiallyConsistent).newValue
        let wanted = wakeAt.load(ordering: .sequentiallyConsistent)
        return wanted > 0 && total >= wanted
            && wakeAt.compareExchange(expected: wanted, desired: 0, ordering: .sequentiallyConsistent).exchanged
    }

    /// By the engine: the chunks counted since it last took them.
    func take() -> Int {
        chunks.exchange(0, ordering: .sequentiallyConsistent)
    }

    /// By the engine, having found the window full: the consumer's ``add(_:)`` wakes it
    /// once `chunks` more have been counted (since the engine last took them). The engine
    /// takes the count again after this (what was added just before counts).
    func requestWake(after chunks: Int) {
        wakeAt.store(max(chunks, 1), ordering: .sequentiallyConsistent)
    }
}

extension CallRecord {
    /// The size of the call's next chunk of new items (``CallSchedule/nextChunkSize()``),
    /// once the room its stream's consumer gave back (``StreamCredit``) is taken; when the
    /// window is still full, the consumer is asked to wake the engine when it has taken
    /// half a window more. By the engine only.
    func nextChunkSize() -> Int? {
        guard let credit, let window = schedule.window else { return schedule.nextChunkSize() }
        schedule.consumed(chunks: credit.take())
        if let size = schedule.nextChunkSize() { return size }
        guard schedule.windowIsFull && !schedule.isExhausted else { return nil }
        credit.requestWake(after: (window + 1) / 2)
        let late = credit.take()
        guard late > 0 else { return nil }
        schedule.consumed(chunks: late)
        return schedule.nextChunkSize()
    }
}
