/// Runs a worker's async work on the worker's own main thread.
///
/// The worker's main thread reads a task frame, then must call your (possibly `async`)
/// function for each item. Handing each chunk to the Swift concurrency pool and waiting
/// would cost two thread wake-ups per chunk (tens of microseconds between vCPUs on these
/// machines). Instead the chunk runs isolated to ``WorkerActor``, whose executor is this
/// one, and the main thread drains this executor's jobs until the chunk is done: a
/// synchronous function runs with no thread hop at all, and an `async` one that suspends
/// on other executors still works (its continuations come back here).
///
/// Why an actor and not a task-executor preference: with a preference, every `await` of
/// the function (once per item) looks the preference up under a lock in the runtime;
/// an actor's executor check is a pointer comparison.
final class WorkerExecutor: SerialExecutor, @unchecked Sendable {
    static let shared = WorkerExecutor()

    private let lock = ConditionLock()
    private var jobs: [UnownedJob] = []
    private var finished = false

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        jobs.append(job)
        lock.signal()
        lock.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    private final class Box<T>: @unchecked Sendable {
        var value: T?
    }

    /// Runs `operation` to completion on the calling thread and returns its result.
    /// Only the worker's main thread calls this.
    func run<T>(_ operation: @escaping @WorkerActor @Sendable () async -> T) -> T {
        let box = Box<T>()
        lock.lock()
        finished = false
        lock.unlock()
        Task { @WorkerActor in
            box.value = await operation()
            self.lock.lock()
            self.finished = true
            self.lock.signal()
            self.lock.unlock()
        }
        while true {
            lock.lock()
            while jobs.isEmpty && !finished { lock.wait() }
            if jobs.isEmpty && finished {
                lock.unlock()
                break
            }
            let ready = jobs
            jobs.removeAll(keepingCapacity: true)
            lock.unlock()
            for job in ready { job.runSynchronously(on: asUnownedSerialExecutor()) }
        }
        return box.value!
    }
}

/// The isolation of a worker's chunks: the worker's main thread, through ``WorkerExecutor``.
@globalActor
actor WorkerActor {
    static let shared = WorkerActor()

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        WorkerExecutor.shared.asUnownedSerialExecutor()
    }
}
