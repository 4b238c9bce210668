import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Platform {
    /// Starts `executable` as a child process (posix_spawn: no fork of this threaded process).
    ///
    /// - `descriptors`: (descriptor here, number in the child). Every other descriptor is
    ///   closed in the child; stdin becomes `/dev/null`; stdout and stderr are inherited.
    /// - The child starts with default signal dispositions, and a signal mask that blocks
    ///   only SIGUSR1 when `blockingUSR1` (workers: Slurm's warning before the time limit
    ///   reaches every process of a step, and a worker discards it once it has started,
    ///   see `mp_ignore_usr1`), else an empty one.
    static func spawn(
        executable: String,
        arguments: [String],
        environment: [String],
        descriptors: [(parent: Int32, child: Int32)],
        blockingUSR1: Bool = false
    ) throws -> Int32 {
        #if canImport(Glibc)
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #else
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // Move the descriptors out of the way first (to >= 10) so that dup2 to the low
        // numbers can never overwrite one another, and so each dup2 really clears CLOEXEC.
        var moved: [(Int32, Int32)] = []
        defer { for (fd, _) in moved { close(fd) } }
        for (parent, child) in descriptors {
            moved.append((try duplicate(parent, atLeast: 10), child))
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, child) in moved {
            posix_spawn_file_actions_adddup2(&actions, fd, child)
        }
        let firstToClose = (moved.map(\.1).max() ?? 2) + 1
        let closeResult = withUnsafeMutablePointer(to: &actions) {
            mp_spawn_file_actions_addclosefrom(UnsafeMutableRawPointer($0), firstToClose)
        }
        if closeResult != 0 {
            // Without closefrom every descriptor of ours is close-on-exec already; that is
            // the fallback (tested descriptors are all created with CLOEXEC).
        }

        var mask = sigset_t()
        sigemptyset(&mask)
        if blockingUSR1 { sigaddset(&mask, SIGUSR1) }
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw MultiprocessingError(
                .spawnFailed,
                "could not start a worker process from \(executable): \(errorString(result))",
                underlying: SystemCallError(call: "posix_spawn", errno: result)
            )
        }
        return pid
    }

    /// Sends `signal` to `pid`; a process that is already gone is not an error.
    static func kill(_ pid: Int32, _ signal: Int32) {
        #if canImport(Glibc)
        _ = Glibc.kill(pid, signal)
        #else
        _ = Darwin.kill(pid, signal)
        #endif
    }

    /// Waits for a child that is known to be exiting (just sent SIGKILL) and reaps it.
    static func reapBlocking(_ pid: Int32) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && mp_errno() == EINTR {}
    }

    /// Ignores SIGINT, SIGTERM and SIGUSR1 in this process (workers: the parent decides;
    /// SIGUSR1 is Slurm's warning before the time limit, see `Requeue`).
    static func ignoreTerminationSignals() {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        _ = mp_ignore_usr1()
    }

    /// Installs handlers for SIGINT and SIGTERM that write the signal's number, as one byte,
    /// to `descriptor` (a self-pipe; `sigaction` with `SA_RESTART`), saving the previous
    /// dispositions. Returns `false` when they could not be installed.
    @discardableResult
    static func installTerminationHandlers(writingTo descriptor: Int32) -> Bool {
        mp_install_termination_handlers(descriptor) == 0
    }

    /// Restores the dispositions ``installTerminationHandlers(writingTo:)`` saved.
    static func restoreTerminationHandlers() {
        mp_restore_termination_handlers()
    }

    /// Installs a SIGUSR1 handler that writes the signal's number to `descriptor`, for the
    /// rest of the process's life. Returns `false` when it could not be installed.
    static func installUSR1Handler(writingTo descriptor: Int32) -> Bool {
        mp_install_usr1_handler(descriptor) == 0
    }

    /// Ignores SIGPIPE, so that writing to a dead worker is an EPIPE error, not a crash.
    static func ignoreBrokenPipe() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// A signal's name, e.g. `SIGKILL`, with what usually raises the signals a crash raises.
    static func signalName(_ signal: Int32) -> String { ProcessTermination.signalName(signal) }
}
