import Synchronization

/// How many workers a pool gets when the program does not say, and why.
///
/// The rules, in order:
/// 1. A count given in code (`workers:`) wins.
/// 2. Else the `MP_WORKERS` environment variable, when it is a positive whole number.
/// 3. Else the CPUs this process may run on: its affinity mask (`sched_getaffinity`,
///    what `nproc` prints), lowered by a cgroup CPU quota when there is one (rounded up).
///    - `SLURM_CPUS_PER_TASK` below that lowers it. Above it, the mask wins, with a
///      warning: Slurm 22.05's `srun` does not pass `-c` on to job steps, so the variable
///      can claim CPUs the step was not given.
///    - Without `SLURM_CPUS_PER_TASK` and without CPU binding (the mask covers every
///      online CPU), `SLURM_CPUS_ON_NODE` bounds it.
///
/// The machine's total core count is never used: on a shared node it oversubscribes the
/// CPUs other jobs were given (the most common complaint about Python's `cpu_count()`).
/// Values that are not positive whole numbers (`abc`, `0`, `-2`, empty) are named in a
/// warning and ignored.
public struct WorkerCount: Sendable, Hashable, CustomStringConvertible {
    /// Which rule decided.
    public enum Source: String, Sendable, Hashable {
        /// The count given in code.
        case explicit
        /// The `MP_WORKERS` environment variable.
        case environmentOverride = "MP_WORKERS"
        /// The process's CPU affinity mask.
        case affinityMask = "affinity mask"
        /// The cgroup CPU quota.
        case cgroupQuota = "cgroup CPU quota"
        /// `SLURM_CPUS_PER_TASK`.
        case slurmCPUsPerTask = "SLURM_CPUS_PER_TASK"
        /// `SLURM_CPUS_ON_NODE`.
        case slurmCPUsOnNode = "SLURM_CPUS_ON_NODE"
        /// The sum over the nodes of a multi-node pool, each node's count decided by its
        /// own worker host from its own CPUs.
        case slurmNodes = "Slurm nodes"
    }

    /// The CPU facts of the machine the rules start from.
    public struct SystemCPUs: Sendable, Hashable {
        /// CPUs in the affinity mask.
        public var affinity: Int
        /// CPUs the machine has online.
        public var online: Int
        /// The cgroup CPU quota in CPUs, when there is one.
        public var cgroupQuota: Double?

        /// Creates CPU facts (the package's tests and the `mp` tool give their own).
        package init(affinity: Int, online: Int, cgroupQuota: Double? = nil) {
            self.affinity = affinity
            self.online = online
            self.cgroupQuota = cgroupQuota
        }

        /// The facts of this process, read now.
        public static func current() -> SystemCPUs {
            #if os(Linux)
            let online = Platform.onlineCPUCount()
            return SystemCPUs(
                affinity: Platform.affinityCPUCount() ?? online, online: online, cgroupQuota: CgroupQuota.cpus())
            #else
            let online = Platform.onlineCPUCount()
            return SystemCPUs(affinity: online, online: online)
            #endif
        }
    }

    /// The number of workers.
    public let count: Int
    /// The rule that decided.
    public let source: Source
    /// One sentence on why, naming the values that were read.
    public let reason: String
    /// An environment value the rules ignored or overruled, and why.
    public struct IgnoredValue: Sendable, Hashable {
        /// The variable, e.g. `SLURM_CPUS_PER_TASK`.
        public let variable: String
        /// Its value as read.
        public let value: String
        /// Why it was ignored, in a few words (`it is not a whole number`).
        public let reason: String
        /// The whole warning, with what to do about it.
        public let message: String
    }

    /// Values that were ignored or overruled.
    public let ignored: [IgnoredValue]

    /// The warnings to show for ``ignored``, each with what to do about it.
    public var warnings: [String] { ignored.map(\.message) }

    /// The count, the reason and the warnings, one per line.
    public var description: String {
        var text = "\(count) worker\(count == 1 ? "" : "s"): \(reason)"
        for warning in warnings { text += "\nwarning: \(warning)" }
        return text
    }

    /// The environment variables the rules read, from this process's environment.
    static func relevantEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        for name in [SlurmEnvironment.workersOverride, SlurmEnvironment.cpusPerTask, SlurmEnvironment.cpusOnNode] {
            if let value = Platform.environment(name) { result[name] = value }
        }
        return result
    }

    /// Applies the rules. Pure: everything it reads is a parameter.
    ///
    /// - Parameters:
    ///   - explicit: a count given in code (must be positive), or `nil`.
    ///   - environment: environment variables (only `MP_WORKERS`, `SLURM_CPUS_PER_TASK`
    ///     and `SLURM_CPUS_ON_NODE` are read).
    ///   - cpus: the CPU facts.
    package static func resolve(explicit: Int?, environment: [String: String], cpus: SystemCPUs) -> WorkerCount {
        var warnings: [IgnoredValue] = []
        if let explicit {
            return WorkerCount(
                count: explicit, source: .explicit, reason: "the count given in code (workers: \(explicit))",
                ignored: [])
        }
        switch SlurmEnvironment.positiveCount(SlurmEnvironment.workersOverride, in: environment) {
        case .value(let n):
            return WorkerCount(
                count: n, source: .environmentOverride, reason: "MP_WORKERS=\(n) overrides the CPU rules", ignored: [])
        case .invalid(let warning):
            warnings.append(warning)
        case .absent:
            break
        }

        let mask = max(1, cpus.affinity)
        var count = mask
        var source = Source.affinityMask
        var reason = "this process may run on \(mask) CPU\(mask == 1 ? "" : "s") (its affinity mask)"

        if let quota = cpus.cgroupQuota, quota > 0 {
            let limit = max(1, Int(quota.rounded(.up)))
            if limit < count {
                count = limit
                source = .cgroupQuota
                reason =
                    "the cgroup CPU quota allows \(formatted(quota)) CPUs (rounded up to \(limit)), fewer than the \(mask) CPUs of the affinity mask"
            }
        }

        let perTask = SlurmEnvironment.positiveCount(SlurmEnvironment.cpusPerTask, in: environment)
        switch perTask {
        case .value(let n):
            if n < count {
                reason = "SLURM_CPUS_PER_TASK=\(n) is below the \(count) CPUs this process may use"
                count = n
                source = .slurmCPUsPerTask
            } else if n > mask {
                warnings.append(
                    IgnoredValue(
                        variable: SlurmEnvironment.cpusPerTask, value: String(n),
                        reason: "above the \(mask) CPU\(mask == 1 ? "" : "s") of the affinity mask",
                        message:
                            "SLURM_CPUS_PER_TASK=\(n) but this job step may only run on \(mask) CPU\(mask == 1 ? "" : "s") (its affinity mask); using \(count). Slurm 22.05's srun does not pass -c on to steps: run `srun -c \(n) ...` (or export SRUN_CPUS_PER_TASK=\(n)) to give the step all of them"
                    ))
            }
        case .invalid(let warning):
            warnings.append(warning)
        case .absent:
            break
        }

        if perTask == .absent, mask >= cpus.online {
            switch SlurmEnvironment.positiveCount(SlurmEnvironment.cpusOnNode, in: environment) {
            case .value(let n) where n < count:
                reason =
                    "SLURM_CPUS_ON_NODE=\(n): the job's CPUs on this node (the process is not bound to CPUs and no -c was given)"
                count = n
                source = .slurmCPUsOnNode
            case .invalid(let warning):
                warnings.append(warning)
            default:
                break
            }
        }
        return WorkerCount(count: count, source: source, reason: reason, ignored: warnings)
    }

    private static func formatted(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String((value * 100).rounded() / 100)
    }

    private static let warned = Atomic<Bool>(false)

    /// Prints the warnings to stderr, once per process.
    func reportWarningsOnce() {
        guard !warnings.isEmpty, !Self.warned.exchange(true, ordering: .relaxed) else { return }
        for warning in warnings {
            Platform.writeToStandardError("swift-multiprocessing: warning: \(warning)\n")
        }
    }
}
