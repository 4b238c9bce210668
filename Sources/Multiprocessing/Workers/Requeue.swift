import Synchronization

/// What SIGUSR1 does in a Slurm job with a journal: requeue the job before its time limit,
/// so that the next run resumes from the journal (`mp slurm-script --requeue`).
///
/// Slurm sends SIGUSR1 some seconds before the limit (`--signal=USR1@LEAD`) to every
/// process of the job's steps; when exactly is not precise (up to a minute early), so
/// nothing here depends on it. The handler is installed only in a Slurm job
/// (`SLURM_JOB_ID`) with a journal: by `bootstrap()` when `MP_JOURNAL` is set, or by the
/// first pool created with ``ProcessPool/Options/journalPath``. Workers ignore SIGUSR1;
/// worker hosts of a multi-node pool pass it on to the coordinator. Elsewhere SIGUSR1 keeps
/// its default.
///
/// On the signal, while a journaled call has items left:
/// - a run that journaled no item yet, or a job restarted ``ProcessPool/Options/maximumRestarts``
///   times (`SLURM_RESTART_COUNT`), does not requeue: one line says why, and the run goes
///   on (the time limit's SIGTERM then stops it in order);
/// - else every journal is synced (and a pool's timeline written, when it keeps one), one line says "requeued job J before its time limit:
///   K of N items done", `scontrol requeue J` runs, and the process exits with status 75
///   (`EX_TEMPFAIL`) without returning to the program. Items in flight are abandoned: the
///   next run computes them again.
///
/// A signal that comes while no journaled call runs is remembered: the next journaled
/// call with items to compute requeues at its start. SIGTERM never requeues.
final class Requeue: Sendable {
    static let shared = Requeue()
    /// The status of a process that requeued its job (`EX_TEMPFAIL`: try again later).
    static let exitStatus: Int32 = 75
    /// Restarts allowed when no limit is set (a week of four-hour runs is 42).
    static let defaultMaximumRestarts = 100

    private struct State {
        var watching = false
        var requested = false
        var declined = false
        var requeueing = false
        /// The smallest limit a pool set in code.
        var maximumRestarts: Int?
    }
    private let state = Mutex(State())

    /// Whether a requeue is under way (the SIGTERM that `scontrol requeue` brings is then
    /// not an interruption).
    var isRequeueing: Bool { state.withLock { $0.requeueing } }

    /// Watches SIGUSR1 when this is a Slurm job's program with a journal, and records
    /// a pool's restart limit (`nil`: none set in code).
    func watchIfWanted(journal: Bool, maximumRestarts: Int?) {
        guard journal, Platform.environment("SLURM_JOB_ID") != nil else { return }
        let start = state.withLock { state -> Bool in
            if let maximumRestarts { state.maximumRestarts = min(state.maximumRestarts ?? .max, maximumRestarts) }
            if state.watching { return false }
            state.watching = true
            return true
        }
        if start && !Interruption.shared.watchUSR1() {
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: cannot watch for SIGUSR1; Slurm's warning before the time limit will end the program instead of requeueing the job\n"
            )
        }
    }

    /// SIGUSR1 arrived (on the signal thread, which may block).
    func signalled(from origin: String) {
        let first = state.withLock { state -> Bool in
            defer { state.requested = true }
            return !state.requested
        }
        guard first else { return }  // each worker host passes it on too
        guard JournalCallsInProgress.current.contains(where: \.hasWorkLeft) else {
            Platform.writeToStandardError(
                "swift-multiprocessing: \(origin == "the program" ? "" : "\(origin) ")received SIGUSR1 (Slurm's warning before the time limit); no journaled call is running: the next one with items to compute requeues the job\n"
            )
            return
        }
        requeue()
    }

    /// A journaled call is about to compute items: requeue now if SIGUSR1 came before.
    func callStarted() {
        guard state.withLock({ $0.requested && !$0.declined && !$0.requeueing }) else { return }
        // Blocking work (fsync, scontrol): a thread of its own, not the caller's.
        if (try? OSThread.start(name: "mp-requeue", { Requeue.shared.requeue() })) == nil { requeue() }
    }

    private func requeue() {
        guard let job = Platform.environment("SLURM_JOB_ID") else { return }
        let restarts = Platform.environment("SLURM_RESTART_COUNT").flatMap { Int($0) } ?? 0
        let (go, limit, source) = state.withLock { state -> (Bool, Int, String) in
            let (limit, source) = Self.restartLimit(inCode: state.maximumRestarts)
            guard !state.declined, !state.requeueing else { return (false, limit, source) }
            state.requeueing = true
            return (true, limit, source)
        }
        guard go else { return }
        let calls = JournalCallsInProgress.current
        let done = calls.reduce(0) { $0 + $1.done }
        let totals = calls.compactMap(\.total)
        let counted =
            totals.count == calls.count ? "\(done) of \(totals.reduce(0, +)) items done" : "\(done) items done"
        var refusal: String?
        if JournalCallsInProgress.itemsWrittenThisRun.load(ordering: .relaxed) == 0 {
            refusal =
                "this run has finished no item yet, so a requeue could only start the same work again (give the job a longer --time, or smaller items)"
        } else if restarts >= limit {
            refusal =
                "it has been restarted \(restarts) time\(restarts == 1 ? "" : "s"), the limit set by \(source) (\(limit))"
        }
        if let refusal {
            state.withLock {
                $0.declined = true
                $0.requeueing = false
            }
            Platform.writeToStandardError(
                "swift-multiprocessing: received SIGUSR1 (Slurm's warning before the time limit) but not requeueing job \(job): \(refusal); \(counted); the run goes on until it ends or reaches its time limit\n"
            )
            return
        }
        JournalRegistry.syncAllNow()
        for pool in Interruption.shared.openPools { pool.writeTimelineBeforeExit() }
        Platform.writeToStandardError(
            "swift-multiprocessing: requeued job \(job) before its time limit: \(counted); the next run resumes from the journal\n"
        )
        let outcome = Self.runScontrolRequeue(job)
        if let failure = outcome {
            state.withLock {
                $0.declined = true
                $0.requeueing = false
            }
            Platform.writeToStandardError(
                "swift-multiprocessing: the requeue of job \(job) failed: \(failure); the run goes on until it ends or reaches its time limit. Check that the job was submitted with --requeue and that scontrol is on the PATH\n"
            )
            return
        }
        Platform.exitFlushing(Self.exitStatus)
    }

    /// The restart limit and where it came from: a pool's option, else `MP_MAX_RESTARTS`,
    /// else ``defaultMaximumRestarts``.
    static func restartLimit(inCode: Int?) -> (limit: Int, source: String) {
        if let inCode { return (max(inCode, 0), "ProcessPool.Options.maximumRestarts") }
        if let text = Platform.environment("MP_MAX_RESTARTS") {
            if let value = Int(text), value >= 0 { return (value, "MP_MAX_RESTARTS") }
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: MP_MAX_RESTARTS=\(text) is not a whole number of 0 or more; using \(defaultMaximumRestarts)\n"
            )
        }
        return (defaultMaximumRestarts, "default")
    }

    /// Runs `scontrol requeue job`; returns why it failed, or `nil`.
    private static func runScontrolRequeue(_ job: String) -> String? {
        #if os(Linux)
        guard let scontrol = Platform.findOnPath("scontrol") else { return "scontrol is not on the PATH" }
        do {
            let (status, output) = try Platform.run(scontrol, ["requeue", job], timeoutSeconds: 60)
            if status == .exited(0) { return nil }
            let said = output.split(separator: "\n").joined(separator: " ")
            let ending = status.map(\.description) ?? "did not end within 60 s"
            return "scontrol requeue \(job) \(ending)\(said.isEmpty ? "" : ": \(said)")"
        } catch {
            return describe(error)
        }
        #else
        return "requeueing is supported on Linux only"
        #endif
    }
}
