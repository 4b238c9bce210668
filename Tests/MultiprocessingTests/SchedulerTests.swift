import Testing

@testable import Multiprocessing

@Suite("Scheduler (pure logic)")
struct SchedulerTests {
    @Test("before any measurement chunks ramp up 1, 2, 4, ...")
    func rampUp() {
        var sizer = ChunkSizer(workers: 2, fixedSize: nil)
        #expect((0..<5).map { _ in sizer.nextSize(remaining: 1_000_000) } == [1, 2, 4, 8, 16])
    }

    @Test("cheap items get chunks of about 2 ms, shrinking toward the end but not below 200 µs")
    func cheapItems() {
        var sizer = ChunkSizer(workers: 2, fixedSize: nil)
        sizer.record(items: 1000, computeNanos: 10_000)  // 10 ns per item
        #expect(sizer.nextSize(remaining: 1_000_000) == 125_000)  // 1/8 of the rest (2 ms would be 200,000)
        #expect(sizer.nextSize(remaining: 100_000) == 20_000)  // floor: 200 µs / 10 ns
        #expect(sizer.nextSize(remaining: 5_000) == 5_000)
    }

    @Test("expensive items go one at a time")
    func expensiveItems() {
        var sizer = ChunkSizer(workers: 2, fixedSize: nil)
        sizer.record(items: 1, computeNanos: 20_000_000)
        #expect(sizer.nextSize(remaining: 64) == 1)
    }

    @Test func fixedSizeWins() {
        var sizer = ChunkSizer(workers: 4, fixedSize: 7)
        #expect(sizer.nextSize(remaining: 100) == 7)
        #expect(sizer.nextSize(remaining: 3) == 3)
    }

    @Test("automatic chunks stay near 32 KiB of inputs: one item when items are large")
    func automaticChunkBytes() {
        let hint = FrameSizeHint()
        #expect(hint.automaticChunkItems(500) == 500, "nothing is known before the first frame")
        hint.record(bytes: 1 << 20, items: 1)
        #expect(hint.automaticChunkItems(32) == 1)
        hint.record(bytes: 8_000, items: 1_000)
        #expect(hint.automaticChunkItems(1 << 20) == 4_096)
        #expect(hint.automaticChunkItems(10) == 10)
    }

    @Test("results come back in input order whether chunks arrive in order or not")
    func orderedResults() {
        var inOrder = OrderedResults<Int>(count: 6)
        inOrder.add(chunkStartingAt: 0, [0, 1])
        inOrder.add(chunkStartingAt: 2, [2])
        inOrder.add(chunkStartingAt: 3, [3, 4, 5])
        #expect(inOrder.inOrder() == [0, 1, 2, 3, 4, 5])

        var shuffled = OrderedResults<Int>(count: 6)
        shuffled.add(chunkStartingAt: 3, [3, 4, 5])
        shuffled.add(chunkStartingAt: 0, [0, 1])
        shuffled.add(chunkStartingAt: 2, [2])
        #expect(shuffled.inOrder() == [0, 1, 2, 3, 4, 5])

        var partial = OrderedResults<Int>(count: 7)  // some chunks early, one single result, a gap
        partial.add(chunkStartingAt: 4, [4, 5])
        partial.add(chunkStartingAt: 0, [0, 1])
        partial.add(3, at: 3)
        #expect(partial.partial() == [0, 1, nil, 3, 4, 5, nil])
        #expect(!partial.isComplete)

        var late = OrderedResults<Int>(count: 4)  // in order after the first, which came late
        late.add(chunkStartingAt: 1, [1])
        late.add(chunkStartingAt: 2, [2, 3])
        late.add(chunkStartingAt: 0, [0])
        #expect(late.inOrder() == [0, 1, 2, 3])
    }

    /// Drives a schedule as the supervisor does: hand out, answer, consume.
    func take(_ schedule: inout CallSchedule<Int>, nextID: inout UInt64) -> CallSchedule<Int>.Chunk? {
        if let chunk = schedule.takeRequeued() { return chunk }
        guard let size = schedule.nextChunkSize() else { return nil }
        let first = schedule.nextIndex
        let count = min(size, (schedule.totalItems ?? Int.max) - first)
        schedule.handedOut(count: count)
        nextID += 1
        return .init(id: nextID, range: first..<(first + count), payload: 0)
    }

    @Test("a call hands out every item exactly once, given-back chunks first")
    func scheduleCoversEveryItem() {
        var schedule = CallSchedule<Int>(totalItems: 1000, workers: 3, fixedChunkSize: nil, window: nil)
        var seen = [Int](repeating: 0, count: 1000)
        var id: UInt64 = 0
        var count = 0
        while let chunk = take(&schedule, nextID: &id) {
            count += 1
            if count == 3 {
                schedule.split(chunk, requeue: [chunk], failed: 0)
                let again = schedule.takeRequeued()
                #expect(again?.id == chunk.id && again?.range == chunk.range)
            }
            for i in chunk.range { seen[i] += 1 }
            schedule.completed(chunk.range, computeNanos: UInt64(chunk.range.count) * 1000)
        }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(schedule.isSettled)
    }

    @Test("a stream's window stops new chunks until the consumer takes results")
    func windowAppliesBackpressure() {
        var schedule = CallSchedule<Int>(totalItems: nil, workers: 2, fixedChunkSize: 10, window: 4)
        var id: UInt64 = 0
        var handed: [CallSchedule<Int>.Chunk] = []
        while let chunk = take(&schedule, nextID: &id) { handed.append(chunk) }
        #expect(handed.count == 4, "the window holds back the fifth chunk")
        for chunk in handed { schedule.completed(chunk.range, computeNanos: 1000) }
        #expect(take(&schedule, nextID: &id) == nil, "answered but not consumed results still count")
        schedule.consumed(chunks: 2)
        #expect(take(&schedule, nextID: &id)?.range == 40..<50)
        #expect(take(&schedule, nextID: &id)?.range == 50..<60)
        #expect(take(&schedule, nextID: &id) == nil)
    }

    @Test("an input of unknown length learns its total when it runs dry")
    func unknownLength() {
        var schedule = CallSchedule<Int>(totalItems: nil, workers: 1, fixedChunkSize: 5, window: nil)
        #expect(schedule.nextChunkSize() == 5)
        schedule.handedOut(count: 3)  // the source had only 3 left
        #expect(!schedule.isExhausted)
        schedule.endOfSource()
        #expect(schedule.totalItems == 3)
        #expect(schedule.isExhausted)
        #expect(!schedule.isSettled)
        schedule.completed(0..<3, computeNanos: 10)
        #expect(schedule.isSettled)
    }
}

extension CallSchedule<Int>.Chunk: Equatable {
    static func == (a: Self, b: Self) -> Bool { a.id == b.id && a.range == b.range }
}

@Suite("Slurm job scripts (pure logic)")
struct JobScriptTests {
    @Test(
        "every time form sbatch accepts, and none other",
        arguments: [
            ("30", true), ("30:15", true), ("01:30:00", true), ("2-00", true), ("2-12:30", true), ("2-12:30:15", true),
            ("0", false), ("1:2:3:4", false), ("1:60", false), ("-5", false), ("2-24", false), ("abc", false),
            ("", false),
            ("1-2-3", false), ("1:", false),
        ])
    func times(text: String, valid: Bool) {
        #expect(SlurmJobScript.isValidTime(text) == valid)
    }

    @Test(
        "memory sizes",
        arguments: [
            ("4G", true), ("500M", true), ("1024", true), ("2t", true), ("G", false), ("0G", false), ("-1G", false),
            ("4GB", false),
        ])
    func memory(text: String, valid: Bool) {
        #expect(SlurmJobScript.isValidMemory(text) == valid)
    }
}
