import Synchronization

/// What SIGINT and SIGTERM do while pools are open: stop the pools in order.
///
/// Workers ignore both signals (Ctrl-C reaches the whole process group, and `scancel`
/// signals every process of a job step): the parent decides. While at least one pool is
/// open, the parent's handlers (installed with `sigaction`, writing to a self-pipe) hand
/// the signal to a thread of its own, which stops every open pool: no new work is sent,
/// calls throw ``MultiprocessingError/Code/interrupted`` with the results they already
/// have, and the workers are stopped. A second SIGINT exits at once (status 130). When
/// the last pool closes, the program's previous dispositions come back. SIGUSR1, when
/// ``Requeue`` watches it, arrives on the same thread and goes to ``Requeue``.
final class Interruption: Sendable {
    static let shared = Interruption()

    private struct State {
        var pools: [ObjectIdentifier: any PoolEngine] = [:]
        var pipe: (read: Int32, write: Int32)?
        var interruptedBySIGINT = false
        var interruptedBySIGTERM = false
    }

    private let state = Mutex(State())

    /// Starts handling SIGINT and SIGTERM for `supervisor`'s pool.
    func register(_ supervisor: any PoolEngine) {
        state.withLock { state in
            guard let pipe = Self.watching(&state) else { return }
            if state.pools.isEmpty {
                state.interruptedBySIGINT = false
                state.interruptedBySIGTERM = false
                Platform.installTerminationHandlers(writingTo: pipe.write)
            }
            state.pools[ObjectIdentifier(supervisor)] = supervisor
        }
    }

    /// The supervisors of the pools open now (pools on the threads engine have none).
    var openPools: [Supervisor] { state.withLock { $0.pools.values.compactMap { $0 as? Supervisor } } }

    /// Hands SIGUSR1 to ``Requeue`` from now on, for the rest of the process's life.
    /// Returns `false` when it cannot be watched (no thread or pipe).
    func watchUSR1() -> Bool {
        state.withLock { state in
            guard let pipe = Self.watching(&state) else { return false }
            return Platform.installUSR1Handler(writingTo: pipe.write)
        }
    }

    /// The self-pipe, created with its thread (`mp-signals`) the first time.
    private static func watching(_ state: inout State) -> (read: Int32, write: Int32)? {
        if let pipe = state.pipe { return pipe }
        guard let (read, write) = try? Platform.socketPair() else { return nil }
        try? Platform.setNonBlocking(write)
        do {
            try OSThread.start(name: "mp-signals") { Interruption.shared.watch(read) }
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: warning: cannot watch for SIGINT/SIGTERM (\(describe(error))); they will end the program without stopping the pool in order\n"
            )
            Platform.close(read)
            Platform.close(write)
            return nil
        }
        state.pipe = (read, write)
        return state.pipe
    }

    /// Stops handling them for this pool; the last one restores the previous dispositions.
    func unregister(_ supervisor: any PoolEngine) {
        state.withLock { state in
            state.pools[ObjectIdentifier(supervisor)] = nil
            if state.pools.isEmpty { Platform.restoreTerminationHandlers() }
        }
    }

    private func watch(_ fd: Int32) {
        var byte: UInt8 = 0
        while true {
            // Platform.read retries EINTR; end of file or another error ends the thread.
            guard (try? Platform.read(fd, into: &byte, count: 1)) == 1 else { return }
            handle(Int32(byte))
        }
    }

    /// A signal a worker host of a multi-node pool received and passed on: Slurm's
    /// `--signal=TERM@...` (without `B:`) reaches only the tasks of job steps, so without
    /// this the program in the batch script would never hear of the time limit.
    func forwarded(_ signal: Int32, from origin: String) {
        handle(signal, origin: origin)
    }

    private func handle(_ signal: Int32, origin: String = "the program") {
        if signal == Platform.Signal.user1 {
            Requeue.shared.signalled(from: origin)
            return
        }
        // `scontrol requeue` ends the job's processes with SIGTERM: this one exits by itself.
        if signal == Platform.Signal.terminate && Requeue.shared.isRequeueing { return }
        let (pools, forceExit) = state.withLock { state -> ([any PoolEngine], Bool) in
            if signal == Platform.Signal.interrupt {
                if state.interruptedBySIGINT { return ([], true) }
                state.interruptedBySIGINT = true
            } else {
                // scancel signals every process: the program and each host. Once is enough.
                if state.interruptedBySIGTERM { return ([], false) }
                state.interruptedBySIGTERM = true
            }
            return (Array(state.pools.values), false)
        }
        if forceExit {
            Platform.writeToStandardError("swift-multiprocessing: second SIGINT: exiting now\n")
            Platform.exitImmediately(130)
        }
        guard !pools.isEmpty else { return }
        let name = Platform.signalName(signal)
        var why =
            signal == Platform.Signal.terminate
            ? "Slurm sends it at the job's time limit and on scancel" : "Ctrl-C; press it again to exit at once"
        if origin != "the program" { why += ", or someone sent it with kill" }
        let who = origin == "the program" ? "" : "\(origin) "
        Platform.writeToStandardError(
            "swift-multiprocessing: \(who)received \(name) (\(why)): stopping the pool\(pools.count == 1 ? "" : "s"); results already received are kept\n"
        )
        let error = MultiprocessingError(
            .interrupted,
            "\(origin) received \(name) (\(why)); the pool stopped its workers and takes no more work. A map, starmap or apply keeps the results it had received in this error's partialResults (and in the file ProcessPool.Options.interruptResultsPath names, if any)",
            interruptSignal: signal)
        for pool in pools { pool.interrupt(error) }
        JournalRegistry.syncAllNow()  // the results already written become durable
    }
}
