import Synchronization

/// How the consumer of a stream gives its window room back (chunks whose results it has
/// taken, see ``CallSchedule``) without waking the engine for each one.
///
/// The consumer counts the chunks here (one atomic add); the engine takes the count
/// whenever it looks for the call's next chunk. Only when the engine finds the window
/// still full does it ask to be woken: the consumer's next count then wakes it, once
/// (``PoolEngine/consumed(callID:chunks:)`` with 0 chunks). While results come faster
/// than they are consumed, or the window is not what holds the work back, the consumer
/// never wakes the engine's thread: each wakeup cost a context switch of the event loop
/// (and an `eventfd` write) per consumed chunk.
///
/// Both sides use sequentially consistent operations: the engine asks to be woken and
/// then takes the count again, the consumer counts and then looks whether it is asked, so
/// at least one of them sees the other (no chunk's room is ever left untaken).
final class StreamCredit: Sendable {
    private let chunks = Atomic<Int>(0)
    private let wakeWanted = Atomic<Bool>(false)

    /// By the consumer: `count` more chunks taken. Returns whether the engine asked to be
    /// woken (the caller then calls ``PoolEngine/consumed(callID:chunks:)`` with 0 chunks).
    func add(_ count: Int) -> Bool {
        chunks.add(count, ordering: .sequentiallyConsistent)
        return wakeWanted.load(ordering: .sequentiallyConsistent)
            && wakeWanted.exchange(false, ordering: .sequentiallyConsistent)
    }

    /// By the engine: the chunks counted since it last took them.
    func take() -> Int {
        chunks.exchange(0, ordering: .sequentiallyConsistent)
    }

    /// By the engine, having found the window full: the consumer's next ``add(_:)`` wakes
    /// it. The engine takes the count again after this (what was added just before counts).
    func requestWake() {
        wakeWanted.store(true, ordering: .sequentiallyConsistent)
    }
}

extension CallRecord {
    /// The size of the call's next chunk of new items (``CallSchedule/nextChunkSize()``),
    /// once the room its stream's consumer gave back (``StreamCredit``) is taken; when the
    /// window is still full, the consumer is asked to wake the engine. By the engine only.
    func nextChunkSize() -> Int? {
        guard let credit else { return schedule.nextChunkSize() }
        schedule.consumed(chunks: credit.take())
        if let size = schedule.nextChunkSize() { return size }
        guard schedule.windowIsFull && !schedule.isExhausted else { return nil }
        credit.requestWake()
        let late = credit.take()
        guard late > 0 else { return nil }
        schedule.consumed(chunks: late)
        return schedule.nextChunkSize()
    }
}
