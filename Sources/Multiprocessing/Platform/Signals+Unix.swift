#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Platform {
    /// The signal numbers code outside `Platform/` names (it imports no C library).
    enum Signal {
        /// SIGINT: Ctrl-C.
        static let interrupt: Int32 = SIGINT
        /// SIGTERM: asks a process to end: Slurm's time limit, `scancel`, `kill` (`srun`
        /// passes it on to the step's tasks).
        static let terminate: Int32 = SIGTERM
        /// SIGKILL: ends a process at once and cannot be caught; how the pool stops a worker.
        static let kill: Int32 = SIGKILL
        /// SIGUSR1: Slurm's warning before the time limit (`--signal=USR1@...`).
        static let user1: Int32 = SIGUSR1
    }
}
