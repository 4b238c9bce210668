#if os(Linux)
/// Where a pool's workers run: the seam between the supervisor (`Workers/`), which speaks
/// the protocol with each worker over its channel, and what starts the worker processes.
/// Two launchers exist: ``LocalLauncher`` (child processes of this program) and
/// ``SlurmLauncher`` (worker hosts on the nodes of a Slurm allocation, which start the
/// workers there). A threads engine could be a third. Used once per worker start, never
/// per chunk. Everything runs on the event loop's owner.
protocol WorkerLauncher {
    /// Prepares to start workers (for Slurm: listens for the hosts and starts the `srun`
    /// step); `delegate` hears of what happens later (workers connecting, exiting, nodes
    /// joining or lost).
    /// - Throws: what prevents any worker from starting (``MultiprocessingError``).
    func start(loop: EventLoop, delegate: any WorkerLauncherDelegate) throws
    /// Starts a worker for `slot`. A worker whose channel is open at once (a local one) is
    /// returned; otherwise `nil`, and the worker is reported later through
    /// ``WorkerLauncherDelegate/launcherConnected(_:)`` or
    /// ``WorkerLauncherDelegate/launcherFailedToStart(slot:_:)``.
    /// - Throws: ``MultiprocessingError/Code/spawnFailed`` when a local process cannot be started.
    func startWorker(slot: Int) throws -> LaunchedWorker?
    /// Kills a worker (SIGKILL), here or through its node's host.
    func stopWorker(pid: Int32, id: UInt64)
    /// Whether the launcher waits for nothing more before the pool may run (every expected
    /// node joined, every worker asked for connected).
    var startIsComplete: Bool { get }
    /// How the workers were counted, for the pool's description (`workers`: slots in all).
    func describe(workers: Int) -> String
    /// The pool is closing: stop taking workers, and tell the nodes to stop theirs.
    func close()
    /// The grace period after ``close()`` ran out: end what is left of the launcher's own
    /// processes (for Slurm: the `srun` step). Returns a timer to cancel once the pool
    /// has closed, if it set one.
    func endAfterGrace(loop: EventLoop) -> UInt64?
    /// Whether the launcher's own processes (the `srun` step) have ended.
    var hasEnded: Bool { get }
}

/// What a launcher reports to the supervisor, on the event loop's thread.
protocol WorkerLauncherDelegate: AnyObject {
    /// Whether the pool is starting or running (it still takes workers).
    var launcherMayStartWorkers: Bool { get }
    /// Whether the pool is still starting.
    var launcherPoolIsStarting: Bool { get }
    /// A node joined with room for `count` workers: the supervisor adds that many slots,
    /// on `node`, and starts a worker for each; returns the new slots.
    func launcherAddedSlots(_ count: Int, node: String) -> Range<Int>
    /// A worker the launcher started has connected: its channel is open.
    func launcherConnected(_ worker: LaunchedWorker)
    /// A worker for `slot` could not be started.
    func launcherFailedToStart(slot: Int, _ error: MultiprocessingError)
    /// A worker (``LaunchedWorker/id``) exited, as its node's host reports.
    func launcherWorkerExited(id: UInt64, _ report: ClusterMessage.WorkerExited)
    /// A node is lost with its slots (its workers are gone, without a word of their
    /// progress); `startError`: what the pool's start fails with, if it was starting.
    func launcherLostNode(_ node: String, slots: [Int], startError: MultiprocessingError)
    /// The pool cannot start (nodes did not join in time, the step ended, a wrong build).
    func launcherFailed(_ error: MultiprocessingError)
    /// A node received a signal and passed it on (Slurm's warnings reach only steps).
    func launcherForwardedSignal(_ signal: Int32, from origin: String)
    /// The launcher's own processes have ended (see ``WorkerLauncher/hasEnded``).
    func launcherEnded()
}

/// A worker whose channel is open, as its launcher hands it to the supervisor.
struct LaunchedWorker {
    let slot: Int
    /// The supervisor's end of the worker's channel (non-blocking): a socket pair's end,
    /// or an authenticated TCP connection.
    let channel: Int32
    /// Its process id; 0 until its hello says (a worker on another node).
    var pid: Int32
    /// The node it runs on.
    let node: String
    /// The launcher's name for it (in ``WorkerLauncher/stopWorker(pid:id:)`` and exit reports).
    let id: UInt64
    /// A pidfd, readable once the process exits, which the supervisor watches and reaps;
    /// -1 when the launcher reports the exit instead.
    let processHandle: Int32
    /// The read end of its stderr pipe (non-blocking), or -1 when it keeps another's.
    let output: Int32
    /// The page where it notes its progress; nil when its exit report carries it.
    let progress: ProgressPage?
}

/// `2 s`, `0.5 s`: a duration in seconds, for messages.
func describeSeconds(_ nanos: UInt64) -> String {
    let seconds = Double(nanos) / 1e9
    return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}
#endif
