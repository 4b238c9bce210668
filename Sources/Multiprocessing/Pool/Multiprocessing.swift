/// The library's entry points that are not tied to one pool.
public enum Multiprocessing {
    /// Enters worker mode when this process was started as a worker; does nothing otherwise.
    ///
    /// Call it as the first line of your program's `main`, before anything else:
    ///
    /// ```swift
    /// @main struct MyScript {
    ///     static func main() async throws {
    ///         Multiprocessing.bootstrap()   // a worker process never returns from here
    ///         ...
    ///     }
    /// }
    /// ```
    ///
    /// Workers are fresh processes of the same executable with the same arguments. In a
    /// worker, this call serves work from the parent until the parent closes the pool (or
    /// dies), then exits the process: it never returns. In the parent it returns at once.
    /// A pool created by a program that never called it throws
    /// ``MultiprocessingError/Code/bootstrapMissing`` before any worker is started.
    ///
    /// In a Slurm job with `MP_JOURNAL` set, it also starts watching SIGUSR1, Slurm's
    /// warning before the time limit (`mp slurm-script --requeue`): see the README, "Jobs
    /// that outlive their time limit".
    public static func bootstrap() {
        WorkerMode.bootstrap()
        let journal = Platform.environment("MP_JOURNAL").map { !$0.isEmpty } ?? false
        Requeue.shared.watchIfWanted(journal: journal, maximumRestarts: nil)
    }

    /// Whether this process is a worker (its code is running inside a pool's worker).
    public static var isWorker: Bool { WorkerMode.isWorker }

    /// How many workers a pool gets when no count is given, and why. See ``WorkerCount``.
    public static func defaultWorkerCount() -> WorkerCount {
        WorkerCount.resolve(
            explicit: nil,
            environment: WorkerCount.relevantEnvironment(),
            cpus: WorkerCount.SystemCPUs.current())
    }
}
