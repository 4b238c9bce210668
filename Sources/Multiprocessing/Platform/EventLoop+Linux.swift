#if os(Linux)
import Glibc
import Synchronization
import CMultiprocessingShim

/// One thread that waits on many descriptors with `epoll` and runs work handed to it.
///
/// Everything registered with the loop is touched only by the loop's owner: the loop's
/// own thread, which holds ``ownership`` while it handles a round of events and lets go
/// while it waits in `epoll_wait`. Other threads talk to it with ``execute(_:)``, which
/// queues a closure and wakes the loop through an `eventfd`, or with
/// ``executeInline(_:)``, which runs the closure on the calling thread when the loop is
/// idle (taking ``ownership`` for that time), saving the loop thread a wakeup. That
/// single-owner rule is what keeps the pool's state free of locks (see `Workers/README.md`).
private let epollIn: UInt32 = 0x001
private let epollOut: UInt32 = 0x004
private let epollErr: UInt32 = 0x008
private let epollHup: UInt32 = 0x010
private let epollRdHup: UInt32 = 0x2000
private let epollEdgeTriggered: UInt32 = 1 << 31

final class EventLoop: @unchecked Sendable {
    /// Receives readiness events for a registered descriptor, on the loop thread.
    protocol Handler: AnyObject {
        func handle(readable: Bool, writable: Bool, hangup: Bool)
    }

    struct Events: OptionSet {
        let rawValue: UInt32
        static let readable = Events(rawValue: epollIn | epollRdHup)
        static let writable = Events(rawValue: epollOut)
        static let edgeTriggered = Events(rawValue: epollEdgeTriggered)
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    /// Work for the loop thread, and whether the thread has ended (then work runs on the
    /// caller's thread: nothing else touches the loop's state any more).
    private let queue = Mutex<(work: [@Sendable () -> Void], ended: Bool)>(([], false))
    private var handlers: [UInt64: any Handler] = [:]
    private var nextToken: UInt64 = 1
    private var timers: [(deadline: UInt64, id: UInt64, work: () -> Void)] = []
    private var nextTimerID: UInt64 = 1
    private var running = true
    private var afterStop: (() -> Void)?
    /// Held by whoever touches the loop's state: the loop thread while it handles a round
    /// of events, or a caller of ``executeInline(_:)`` while the loop thread waits.
    private let ownership = Mutex<Void>(())
    /// Set when work changed what the waiting loop thread must wait for (a timer, a stop):
    /// inline work then wakes it.
    private var needsWake = false

    init() throws {
        epollFD = try Platform.call("epoll_create1") { mp_epoll_create() }
        do {
            wakeFD = try Platform.call("eventfd") { mp_eventfd() }
        } catch {
            Platform.close(epollFD)
            throw error
        }
        _ = mp_epoll_ctl(epollFD, 1, wakeFD, epollIn, 0)
    }

    /// Starts the loop's thread (with a stack of `stackBytes`, or the system's default).
    /// The thread closes the loop's descriptors when it ends.
    func start(name: String, stackBytes: Int? = nil) throws {
        try OSThread.start(name: name, stackBytes: stackBytes) { [self] in
            run()
            owning {
                // From here on, work handed to the loop runs on the caller's thread, one at
                // a time under `ownership` (after this block).
                let leftover = queue.withLock { queue in
                    queue.ended = true
                    defer { queue.work = [] }
                    return queue.work
                }
                running = false
                handlers.removeAll()
                timers.removeAll()
                Platform.close(wakeFD)
                Platform.close(epollFD)
                afterStop?()
                afterStop = nil
                for work in leftover { work() }
            }
        }
    }

    /// Runs on the loop thread after the descriptor events of each round, and again after
    /// its queued work and timers (the supervisor hands over the results gathered so far at
    /// once). Set before ``start(name:)``.
    var afterIteration: (() -> Void)?

    /// Runs `work` on the loop thread, soon; once the loop has ended, at once on the
    /// calling thread (as the loop's owner). Callable from any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        let ended = queue.withLock { queue in
            if queue.ended { return true }
            queue.work.append(work)
            // Under the lock: the loop thread closes the eventfd only after `ended` is set.
            if queue.work.count == 1 { wake() }
            return false
        }
        guard ended else { return }
        if isOwnedByThisThread {
            work()
        } else {
            owning { work() }
        }
    }

    /// Runs `work` on the calling thread at once when the loop thread is idle in
    /// `epoll_wait` and no queued work is waiting (then nothing else touches the loop's
    /// state until `work` returns), else queues it like ``execute(_:)``. `work` must not
    /// block or run the program's code. Saves the wakeup of the loop thread on the path of
    /// a call: the caller writes its task to a worker itself.
    func executeInline(_ work: @escaping @Sendable () -> Void) {
        // Work that the owner itself hands over is queued: never a nested try-lock (which
        // traps on the Linux `Mutex` of Swift runtimes before 6.3).
        guard !isOwnedByThisThread else { return execute(work) }
        let ran = ownership.withLockIfAvailable { _ -> Bool in
            // Queued work goes first: it may be the submit that this work finishes.
            guard running, queue.withLock({ !$0.ended && $0.work.isEmpty }) else { return false }
            ownerThread.store(pthread_self(), ordering: .relaxed)
            runsInlineWork = true
            defer {
                runsInlineWork = false
                ownerThread.store(0, ordering: .relaxed)
            }
            needsWake = false
            work()
            afterIteration?()
            if needsWake { wake() }
            return true
        }
        if ran != true { execute(work) }
    }

    /// Whether the work running now is inline work on a caller's thread (read by the owner).
    private(set) var runsInlineWork = false

    /// Runs `work` at once, unless this is inline work on a caller's thread: then `work`
    /// is queued to run on the loop thread. For what must not run on a Swift concurrency
    /// thread (writes to stderr, the program's own code, respawning a worker). By the
    /// loop's owner only: `work` may touch the owner's state, and it runs as the owner.
    func onLoopThread(_ work: @escaping () -> Void) {
        guard runsInlineWork else { return work() }
        let owned = OwnersWork(work)
        execute { owned.work() }
    }

    /// Work that only the loop's owner runs, handed from one owner to the next.
    private final class OwnersWork: @unchecked Sendable {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    /// The thread that owns the loop now (its `pthread_t`), or 0. Only the owner stores
    /// its own identity, so a thread that reads its own identity here does own the loop.
    private let ownerThread = Atomic<UInt>(0)

    private var isOwnedByThisThread: Bool { ownerThread.load(ordering: .relaxed) == pthread_self() }

    /// Runs `body` as the loop's owner, waiting for the current owner to let go.
    private func owning(_ body: () -> Void) {
        ownership.withLock { _ in
            ownerThread.store(pthread_self(), ordering: .relaxed)
            defer { ownerThread.store(0, ordering: .relaxed) }
            body()
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Registers `fd` for `events`; by the loop's owner only. Returns a token for
    /// ``unregister(_:fd:)``.
    func register(_ fd: Int32, _ events: Events, _ handler: any Handler) throws -> UInt64 {
        let token = nextToken
        nextToken += 1
        try Platform.call("epoll_ctl(ADD)") { mp_epoll_ctl(epollFD, 1, fd, events.rawValue, token) }
        handlers[token] = handler
        return token
    }

    /// Stops watching `fd`; by the loop's owner only. The descriptor is not closed.
    func unregister(_ token: UInt64, fd: Int32) {
        handlers[token] = nil
        _ = mp_epoll_ctl(epollFD, 2, fd, 0, 0)
    }

    /// Runs `work` on the loop thread once `nanoseconds` have passed; by the loop's owner
    /// only.
    @discardableResult
    func schedule(afterNanoseconds nanoseconds: UInt64, _ work: @escaping () -> Void) -> UInt64 {
        let id = nextTimerID
        nextTimerID += 1
        timers.append((Platform.monotonicNanos() + nanoseconds, id, work))
        needsWake = true
        return id
    }

    /// Cancels a timer from ``schedule(afterNanoseconds:_:)``; by the loop's owner only.
    func cancelTimer(_ id: UInt64) {
        timers.removeAll { $0.id == id }
    }

    /// Ends the loop after the round in progress (the next round, when called from inline
    /// work) and runs `afterwards` once its descriptors are closed; by the loop's owner only.
    func stop(afterwards: @escaping () -> Void = {}) {
        running = false
        afterStop = afterwards
        needsWake = true
    }

    private func run() {
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            var timeout: Int32?
            owning { timeout = running ? nextTimeoutMilliseconds() : nil }
            guard let timeout else { return }
            let count = mp_epoll_wait(epollFD, &tokens, &events, 64, timeout)
            if count < 0 {
                if mp_errno() == EINTR { continue }
                Platform.writeToStandardError(
                    "swift-multiprocessing: epoll_wait failed: \(Platform.errorString(mp_errno())); the pool's event loop stops\n"
                )
                return
            }
            owning { handleRound(count, tokens, events) }
        }
    }

    /// One round: the descriptor events, queued work, due timers. Holds ``ownership``.
    private func handleRound(_ count: Int32, _ tokens: [UInt64], _ events: [UInt32]) {
        for i in 0..<Int(count) {
            let token = tokens[i]
            let flags = events[i]
            if token == 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                continue
            }
            guard let handler = handlers[token] else { continue }
            handler.handle(
                readable: flags & epollIn != 0,
                writable: flags & epollOut != 0,
                hangup: flags & (epollHup | epollRdHup | epollErr) != 0
            )
        }
        // Results read in this round go out before queued work runs: the task they wake
        // may submit its next call quickly enough for this same round to take it.
        afterIteration?()
        runQueuedWork()
        runDueTimers()
        afterIteration?()
    }

    private func runQueuedWork() {
        while true {
            let work = queue.withLock { queue -> [@Sendable () -> Void] in
                let taken = queue.work
                queue.work.removeAll(keepingCapacity: true)
                return taken
            }
            if work.isEmpty { return }
            for item in work { item() }
        }
    }

    private func runDueTimers() {
        guard !timers.isEmpty else { return }
        let now = Platform.monotonicNanos()
        let due = timers.filter { $0.deadline <= now }
        guard !due.isEmpty else { return }
        timers.removeAll { $0.deadline <= now }
        for timer in due { timer.work() }
    }

    private func nextTimeoutMilliseconds() -> Int32 {
        if queue.withLock({ !$0.work.isEmpty }) { return 0 }
        guard let next = timers.map(\.deadline).min() else { return -1 }
        let now = Platform.monotonicNanos()
        if next <= now { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, 60_000))
    }
}
#endif
