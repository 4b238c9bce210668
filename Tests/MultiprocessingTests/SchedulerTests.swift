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

    @Test("a call hands out every item exactly once, given-back chunks first")
    func scheduleCoversEveryItem() {
        var schedule = CallSchedule(totalItems: 1000, workers: 3, fixedChunkSize: nil)
        var seen = [Int](repeating: 0, count: 1000)
        var given: [Range<Int>] = []
        while let range = schedule.takeChunk() {
            given.append(range)
            if given.count == 3 {
                schedule.giveBack(range)
                #expect(schedule.takeChunk() == range)
            }
            for i in range { seen[i] += 1 }
            schedule.completed(range, computeNanos: UInt64(range.count) * 1000)
        }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(schedule.isExhausted)
        #expect(schedule.outstandingChunks == 0)
    }
}
