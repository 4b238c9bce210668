import Testing

@testable import Multiprocessing

/// A fake worker for the scheduler's lost-work decisions: the chunks it holds (oldest
/// first, as the supervisor sends them) and where its progress page says it is. Settling
/// it runs the same pure decisions the supervisor carries out, and collects what a call
/// would see.
private struct FakeWorker {
    var held: [(chunkID: UInt64, task: Message.Task)] = []
    var position = WorkerPosition.idle

    /// Sends chunk `chunkID` of items `first..<(first + count)` (run offsets `run`, all of them by default).
    mutating func send(_ chunkID: UInt64, first: Int, count: Int, run: Range<Int>? = nil) {
        held.append((chunkID, Message.Task(callID: 1, chunkID: chunkID, firstIndex: first, count: count, run: run)))
    }

    struct Outcome: Equatable {
        /// Item ranges sent again, in order (whole chunks and narrowed pieces).
        var resent: [Range<Int>] = []
        /// Item ranges that failed for good, with how many earlier attempts their error names.
        var failed: [Range<Int>] = []
        var earlierAttempts: [Int] = []
        /// Item ranges that are tried again.
        var retried: [Range<Int>] = []
        /// Item indices named in the errors (nil: a whole chunk failed with its node).
        var namedItems: [Int?] = []
    }

    func settle(
        nodeLost: Bool = false, cancelled: Bool = false, retries: Int = 0, ledger: inout RetryLedger
    ) -> Outcome {
        var outcome = Outcome()
        for (heldAt, chunk) in held.enumerated() {
            switch LostWork.fate(
                of: chunk.chunkID, chunk.task, heldAt: heldAt, position: position, nodeLost: nodeLost,
                cancelled: cancelled)
            {
            case .requeue:
                outcome.resent.append(chunk.task.itemRange)
            case .fail(let offsets, let itemIndex, _):
                outcome.namedItems.append(itemIndex)
                let error = MultiprocessingError(.workerDied, "died")
                let settlement = LostWork.settle(
                    chunk.task, failing: offsets, error: error, retries: retries, attempts: &ledger)
                let first = chunk.task.firstIndex
                outcome.resent += settlement.resend.map { (first + $0.lowerBound)..<(first + $0.upperBound) }
                if settlement.retried {
                    outcome.retried.append(settlement.failedItems)
                } else {
                    outcome.failed.append(settlement.failedItems)
                    outcome.earlierAttempts.append(settlement.earlierAttempts.count)
                }
            }
        }
        return outcome
    }

    func settle(nodeLost: Bool = false, cancelled: Bool = false, retries: Int = 0) -> Outcome {
        var ledger = RetryLedger()
        return settle(nodeLost: nodeLost, cancelled: cancelled, retries: retries, ledger: &ledger)
    }
}

extension RetryLedger.Decision {
    /// nil: retry; else the messages of the earlier attempts the failure names.
    fileprivate var earlierAttempts: [String]? {
        switch self {
        case .retry: return nil
        case .giveUp(let earlier): return earlier.map(\.message)
        }
    }
}

@Suite("Scheduler: lost work, retries, queue depth, timeouts (pure logic)")
struct SchedulerLostWorkTests {
    /// Chunks 1 (items 0..<10), 2 (10..<20) and 3 (20..<30) held by one worker.
    private func threeChunks() -> FakeWorker {
        var worker = FakeWorker()
        worker.send(1, first: 0, count: 10)
        worker.send(2, first: 10, count: 10)
        worker.send(3, first: 20, count: 10)
        return worker
    }

    @Test(
        "dies decoding, running or encoding item k: only k fails, the rest of its chunk and the queued chunks go back",
        arguments: [WorkerPosition.Phase.decoding, .running, .encoding])
    func diesOnItem(phase: WorkerPosition.Phase) {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 1, phase: phase, offset: 4)
        #expect(
            LostWork.fate(
                of: 1, worker.held[0].task, heldAt: 0, position: worker.position, nodeLost: false, cancelled: false)
                == .fail(offsets: 4..<5, itemIndex: 4, phase: phase))
        let outcome = worker.settle()
        #expect(outcome.failed == [4..<5])
        #expect(outcome.namedItems == [4])
        #expect(outcome.resent == [0..<4, 5..<10, 10..<20, 20..<30])
        #expect(outcome.retried.isEmpty)
    }

    @Test("dies on the first or last item of a chunk: no empty piece is sent again")
    func diesOnAnEdge() {
        var worker = FakeWorker()
        worker.send(1, first: 100, count: 5)
        worker.position = WorkerPosition(chunkID: 1, phase: .running, offset: 0)
        #expect(worker.settle().resent == [101..<105])
        worker.position = WorkerPosition(chunkID: 1, phase: .running, offset: 4)
        #expect(worker.settle().resent == [100..<104])
        #expect(worker.settle().failed == [104..<105])
    }

    @Test("dies running a chunk behind the first (it holds the first's result): the first goes back whole")
    func diesOnALaterChunk() {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 2, phase: .running, offset: 2)
        let outcome = worker.settle()
        #expect(outcome.failed == [12..<13])
        #expect(outcome.resent == [0..<10, 10..<12, 13..<20, 20..<30])
    }

    @Test("dies idle holding a finished, unanswered chunk: nothing fails, every chunk goes back as it was")
    func diesIdle() {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 1, phase: .idle, offset: 9)
        let outcome = worker.settle()
        #expect(outcome.failed.isEmpty && outcome.retried.isEmpty)
        #expect(outcome.resent == [0..<10, 10..<20, 20..<30])
    }

    @Test("a narrowed frame: the page's offset counts within its run range; an offset outside it fails nothing")
    func narrowedFrame() {
        var worker = FakeWorker()
        worker.send(7, first: 40, count: 10, run: 3..<8)
        worker.position = WorkerPosition(chunkID: 7, phase: .running, offset: 5)
        let outcome = worker.settle()
        #expect(outcome.failed == [45..<46])
        #expect(outcome.resent == [43..<45, 46..<48])
        worker.position = WorkerPosition(chunkID: 7, phase: .running, offset: 1)
        #expect(worker.settle() == FakeWorker.Outcome(resent: [43..<48]))
        worker.position = WorkerPosition(chunkID: 7, phase: .running, offset: 8)
        #expect(worker.settle() == FakeWorker.Outcome(resent: [43..<48]))
    }

    @Test("a page naming a chunk the worker no longer holds fails nothing")
    func stalePage() {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 99, phase: .running, offset: 0)
        #expect(worker.settle() == FakeWorker.Outcome(resent: [0..<10, 10..<20, 20..<30]))
    }

    @Test("retries allowed: the item goes back (after the rest of its chunk) until the attempts are spent")
    func retries() {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 1, phase: .running, offset: 4)
        var ledger = RetryLedger()
        for attempt in 1...2 {
            let outcome = worker.settle(retries: 2, ledger: &ledger)
            #expect(outcome.retried == [4..<5], "attempt \(attempt)")
            #expect(outcome.failed.isEmpty)
            #expect(outcome.resent == [0..<4, 5..<10, 4..<5, 10..<20, 20..<30])
            #expect(ledger.attemptCount(firstIndex: 4) == attempt)
        }
        let last = worker.settle(retries: 2, ledger: &ledger)
        #expect(last.retried.isEmpty)
        #expect(last.failed == [4..<5])
        #expect(last.earlierAttempts == [2], "the error names both earlier attempts")
        #expect(last.resent == [0..<4, 5..<10, 10..<20, 20..<30])
        #expect(ledger.attemptCount(firstIndex: 4) == 0, "the ledger forgets items that failed for good")
    }

    @Test("retries counted per item: another item's failure does not spend them")
    func retriesPerItem() {
        var ledger = RetryLedger()
        let error = MultiprocessingError(.workerDied, "died")
        #expect(ledger.failed(firstIndex: 3, error, retries: 1).earlierAttempts == nil)
        #expect(ledger.failed(firstIndex: 8, error, retries: 1).earlierAttempts == nil)
        #expect(ledger.failed(firstIndex: 3, error, retries: 1).earlierAttempts == ["died"])
        #expect(ledger.failed(firstIndex: 9, error, retries: 0).earlierAttempts == [])
    }

    @Test("node lost with several chunks in flight: the first fails whole (it was running), the rest go back")
    func nodeLost() {
        var worker = threeChunks()
        // A remote worker's page went with its node: no position.
        let outcome = worker.settle(nodeLost: true)
        #expect(outcome.failed == [0..<10])
        #expect(outcome.namedItems == [nil])
        #expect(outcome.resent == [10..<20, 20..<30])
        let retried = worker.settle(nodeLost: true, retries: 1)
        #expect(retried.retried == [0..<10])
        #expect(retried.resent == [0..<10, 10..<20, 20..<30])
        // A narrowed first chunk fails only its run.
        worker = FakeWorker()
        worker.send(4, first: 50, count: 10, run: 6..<10)
        worker.send(5, first: 60, count: 10)
        #expect(
            worker.settle(nodeLost: true)
                == FakeWorker.Outcome(resent: [60..<70], failed: [56..<60], earlierAttempts: [0], namedItems: [nil]))
    }

    @Test("a worker stopped because its call was cancelled fails nothing, even with its node lost")
    func cancelled() {
        var worker = threeChunks()
        worker.position = WorkerPosition(chunkID: 1, phase: .running, offset: 4)
        #expect(worker.settle(cancelled: true) == FakeWorker.Outcome(resent: [0..<10, 10..<20, 20..<30]))
        #expect(
            worker.settle(nodeLost: true, cancelled: true) == FakeWorker.Outcome(resent: [0..<10, 10..<20, 20..<30]))
    }

    @Test("queue depth: two chunks per worker, up to 128 tiny ones within 1 ms of work and a shared byte budget")
    func queueDepth() {
        #expect(QueueDepth.maximum(lastChunkNanos: nil) == 2)
        #expect(QueueDepth.maximum(lastChunkNanos: 50_000) == 2)
        #expect(QueueDepth.maximum(lastChunkNanos: 49_999) == 20)
        #expect(QueueDepth.maximum(lastChunkNanos: 10_000) == 100)
        #expect(QueueDepth.maximum(lastChunkNanos: 1) == 128)
        #expect(QueueDepth.maximum(lastChunkNanos: 0) == 128)
        #expect(QueueDepth.admits(held: 0, heldBytes: 5 << 20, depth: 1, workers: 2))
        #expect(QueueDepth.admits(held: 1, heldBytes: 5 << 20, depth: 2, workers: 2))
        #expect(!QueueDepth.admits(held: 2, heldBytes: 0, depth: 2, workers: 2))
        #expect(QueueDepth.admits(held: 2, heldBytes: (1 << 20) - 1, depth: 3, workers: 2))
        #expect(!QueueDepth.admits(held: 2, heldBytes: 1 << 20, depth: 3, workers: 2))
        #expect(!QueueDepth.admits(held: 1, heldBytes: 1 << 20, depth: 3, workers: 2))
        #expect(!QueueDepth.admits(held: 100, heldBytes: 0, depth: 100, workers: 2))
        // The short-chunk budget is the pool's, shared: two workers' worth (1 MiB each) in
        // all, at most 1 MiB and at least 64 KiB (two automatic chunks) a worker.
        #expect(QueueDepth.shortChunksBudget(workers: 1) == 1 << 20)
        #expect(QueueDepth.shortChunksBudget(workers: 2) == 1 << 20)
        #expect(QueueDepth.shortChunksBudget(workers: 16) == 128 << 10)
        #expect(QueueDepth.shortChunksBudget(workers: 200) == 64 << 10)
        #expect(QueueDepth.admits(held: 2, heldBytes: (64 << 10) - 1, depth: 3, workers: 200))
        #expect(!QueueDepth.admits(held: 2, heldBytes: 64 << 10, depth: 3, workers: 200))
        #expect(QueueDepth.admits(held: 1, heldBytes: 5 << 20, depth: 2, workers: 200))
        #expect(QueueDepth.threadBatch(lastChunkNanos: nil) == 1)
        #expect(QueueDepth.threadBatch(lastChunkNanos: 60_000) == 1)
        #expect(QueueDepth.threadBatch(lastChunkNanos: 40_000) == 25)
        #expect(QueueDepth.threadBatch(lastChunkNanos: 2) == 128)
    }

    @Test("timeout: the clock runs from the oldest chunk's start, moved forward to its current item's start")
    func heldWork() {
        let oldest = Message.Task(callID: 3, chunkID: 1, firstIndex: 0, count: 10)
        let behind = Message.Task(callID: 4, chunkID: 2, firstIndex: 10, count: 10, run: 2..<10)
        // Nothing on the page: from the clock's start, the oldest chunk's items.
        #expect(
            WorkClock.held(oldest: oldest, running: nil, clockStartNanos: 1_000, now: 9_000)
                == WorkClock.Held(nanos: 8_000, items: 0..<10, callID: 3))
        // The item it runs started after the clock: from the item's start.
        let running = WorkerPosition(chunkID: 2, phase: .running, offset: 4, startedNanos: 5_000)
        #expect(
            WorkClock.held(oldest: oldest, running: (behind, running), clockStartNanos: 1_000, now: 9_000)
                == WorkClock.Held(nanos: 4_000, items: 12..<20, callID: 4))
        // A start before the clock (or none recorded) does not move it back.
        var early = running
        early.startedNanos = 500
        #expect(
            WorkClock.held(oldest: oldest, running: (behind, early), clockStartNanos: 1_000, now: 9_000).nanos == 8_000)
        // An offset outside the chunk's run (a stale page) does not move it.
        var outside = running
        outside.offset = 1
        #expect(
            WorkClock.held(oldest: oldest, running: (behind, outside), clockStartNanos: 1_000, now: 9_000).nanos
                == 8_000)
        // A clock read before it started reads 0.
        #expect(WorkClock.held(oldest: oldest, running: nil, clockStartNanos: 10_000, now: 9_000).nanos == 0)
        #expect(WorkClock.isOverdue(heldNanos: 1_000_001, limit: 1_000_000))
        #expect(!WorkClock.isOverdue(heldNanos: 1_000_000, limit: 1_000_000))
    }

    @Test("stalled: held at least the report threshold, and 20 times the call's chunks")
    func stalled() {
        #expect(WorkClock.isStalled(heldNanos: 30, typicalChunkNanos: nil, reportAfterNanos: 30))
        #expect(!WorkClock.isStalled(heldNanos: 29, typicalChunkNanos: nil, reportAfterNanos: 30))
        #expect(WorkClock.isStalled(heldNanos: 200, typicalChunkNanos: 10, reportAfterNanos: 30))
        #expect(!WorkClock.isStalled(heldNanos: 199, typicalChunkNanos: 10, reportAfterNanos: 30))
    }
}
