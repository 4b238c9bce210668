#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Signal numbers, for code outside `Platform/` (which imports no C library).
extension Platform {
    /// SIGKILL: ends a process at once (a worker past its timeout, or a closing pool's).
    static let killSignal: Int32 = SIGKILL
    /// SIGTERM: asks a process to end (`srun` passes it on to the step's tasks).
    static let terminateSignal: Int32 = SIGTERM
    /// SIGUSR1: Slurm's warning before the time limit (`--signal=USR1@...`).
    static let warningSignal: Int32 = SIGUSR1
}
