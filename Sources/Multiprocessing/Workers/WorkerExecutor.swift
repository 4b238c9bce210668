/// Runs a worker's async work on the worker's own main thread.
///
/// The worker's main thread reads a task frame, then must call your (possibly `async`)
/// function for each item. Handing each chunk to the Swift concurrency pool and waiting
/// would cost a thread hop per chunk (tens of microseconds between vCPUs on these
/// machines). Instead the chunk runs in a `Task` whose executor preference is this
/// executor, and the main thread drains this executor's jobs until the chunk is done: a
/// synchronous function runs with no thread hop at all, and an `async` one that
/// suspends on other executors still works (its continuations come back here).
final class WorkerExecutor: TaskExecutor, @unchecked Sendable {
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

    private final class Box<T>: @unchecked Sendable {
        var value: T?
    }

    /// Runs `operation` to completion on the calling thread and returns its result.
    func run<T>(_ operation: @escaping @Sendable () async -> T) -> T {
        let box = Box<T>()
        lock.lock()
        finished = false
        lock.unlock()
        Task(executorPreference: self) {
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
            for job in ready { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
        return box.value!
    }
}
