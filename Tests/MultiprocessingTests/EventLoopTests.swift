import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's event loop: work handed to it from other threads, inline or queued.
@Suite("Event loop", .timeLimit(.minutes(1)))
struct EventLoopTests {
    /// A started loop, idle in `epoll_wait` by the time it is returned.
    func idleLoop() async throws -> EventLoop {
        let loop = try EventLoop()
        try loop.start(name: "mp-test-loop")
        try await Task.sleep(for: .milliseconds(50))
        return loop
    }

    /// Hands `body` to the loop inline until it runs on this thread (a loop busy with its
    /// own round queues the work; such a queued attempt does nothing). Returns whether it
    /// ran inline within about a second.
    func runInline(_ loop: EventLoop, _ body: @escaping @Sendable () -> Void) async throws -> Bool {
        for _ in 0..<100 {
            let ranInline = Mutex(false)
            let caller = pthread_self()
            loop.executeInline {
                guard pthread_self() == caller else { return }
                ranInline.withLock { $0 = true }
                body()
            }
            if ranInline.withLock({ $0 }) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test("inline work runs at once on the calling thread while the loop waits")
    func inlineRunsOnCaller() async throws {
        let loop = try await idleLoop()
        defer { loop.execute { loop.stop() } }
        #expect(try await runInline(loop) {}, "inline work never ran on the caller's thread")
    }

    @Test("while the loop thread runs work, inline work waits its turn instead of running alongside")
    func inlineWaitsForTheLoop() async throws {
        let loop = try await idleLoop()
        defer { loop.execute { loop.stop() } }
        let busy = Mutex(false)
        let release = Mutex(false)
        let sawBusy = Mutex<Bool?>(nil)
        loop.execute {
            busy.withLock { $0 = true }
            let deadline = ContinuousClock.now + .seconds(20)
            while !release.withLock({ $0 }) && ContinuousClock.now < deadline { usleep(1_000) }
            busy.withLock { $0 = false }
        }
        try await waitUntil("the loop thread to start its work") { busy.withLock { $0 } }
        loop.executeInline { sawBusy.withLock { $0 = busy.withLock { $0 } } }
        try await Task.sleep(for: .milliseconds(20))
        release.withLock { $0 = true }
        try await waitUntil("the inline work to run") { sawBusy.withLock { $0 } != nil }
        #expect(sawBusy.withLock { $0 } == false, "inline work ran while the loop thread was running work")
    }

    /// Polls `condition` for up to 20 s (the suite runs alongside many processes on two
    /// CPUs; 5 s once ran out there); records a failure naming `what` when it stays false.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("waited 20 s for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    @Test("a timer set by inline work fires: the waiting loop is woken to take it into account")
    func inlineTimerFires() async throws {
        let loop = try await idleLoop()
        defer { loop.execute { loop.stop() } }
        let fired = Mutex(false)
        #expect(
            try await runInline(loop) { loop.schedule(afterNanoseconds: 10_000_000) { fired.withLock { $0 = true } } })
        try await waitUntil("a 10 ms timer set by inline work to fire") { fired.withLock { $0 } }
    }

    @Test("a stop asked for by inline work ends the waiting loop, which then runs what follows it")
    func inlineStopEndsTheLoop() async throws {
        let loop = try await idleLoop()
        let stopped = Mutex(false)
        #expect(try await runInline(loop) { loop.stop { stopped.withLock { $0 = true } } })
        try await waitUntil("the loop to end after an inline stop") { stopped.withLock { $0 } }
        let ranAfterEnd = Mutex(false)
        loop.execute { ranAfterEnd.withLock { $0 = true } }
        #expect(ranAfterEnd.withLock { $0 }, "work handed to an ended loop runs at once on the caller's thread")
    }

    @Test("inline work asked for inside the loop's own work is queued, not run nested")
    func nestedInlineIsQueued() async throws {
        let loop = try await idleLoop()
        defer { loop.execute { loop.stop() } }
        let order = Mutex<[String]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.executeInline {
                order.withLock { $0.append("outer") }
                loop.executeInline {
                    order.withLock { $0.append("inner") }
                    done.resume()
                }
                order.withLock { $0.append("outer end") }
            }
        }
        #expect(order.withLock { $0 } == ["outer", "outer end", "inner"])
    }
}
