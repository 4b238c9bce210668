import Synchronization

/// Where a pool's workers run: on this node, or on every node of a Slurm allocation.
/// Pure logic over the environment, so every rule has a unit test.
enum Placement: Equatable, Sendable {
    /// Workers are children of this process.
    case local
    /// One worker host per node, started as one `srun` step from this process, which runs
    /// once in the batch script of a multi-node job.
    case nodes(count: Int, cpusPerTask: Int?)

    /// What the program is told when it cannot span the nodes, with the fix (printed once).
    struct Advice: Equatable, Sendable {
        let message: String
    }

    /// The variables ``decide(explicitWorkers:environment:)`` reads, from this process's environment.
    static func relevantEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        for name in [
            "MP_NODES", "SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS",
            "SLURM_STEP_NUM_NODES", "SLURM_JOB_CPUS_PER_NODE", "SLURM_PROCID",
        ] {
            if let value = Platform.environment(name) { result[name] = value }
        }
        return result
    }

    private static let advised = Atomic<Bool>(false)

    /// Prints the advice on standard error, once per process.
    static func report(_ advice: Advice) {
        guard !advised.exchange(true, ordering: .relaxed) else { return }
        Platform.writeToStandardError("swift-multiprocessing: \(advice.message)\n")
    }

    /// Decides the placement of a pool.
    ///
    /// - A count given in code keeps the pool on this node.
    /// - `MP_NODES=1` keeps it on this node too (said once in a multi-node job, whose other
    ///   nodes then stay idle); any other value is ignored with a warning.
    /// - In a job of several nodes (`SLURM_JOB_NUM_NODES` above 1), outside any job step
    ///   (no `SLURM_STEP_ID`: the program runs in the batch script itself), the pool spans
    ///   every node: one worker host per node, each with `cpusPerTask` CPUs (the fewest
    ///   CPUs any node of the job has, from `SLURM_JOB_CPUS_PER_NODE`).
    /// - Inside a step of several tasks on several nodes (`srun` in front of the program),
    ///   each task runs its own pool on its own node, with advice on how to fix the job
    ///   script: starting a second step from inside one would wait for resources forever.
    static func decide(explicitWorkers: Int?, environment: [String: String]) -> (Placement, Advice?) {
        if explicitWorkers != nil { return (.local, nil) }
        let nodes = environment["SLURM_JOB_NUM_NODES"].flatMap { Int($0.trimmingWhitespace) } ?? 1
        let inMultiNodeJob = environment["SLURM_JOB_ID"] != nil && nodes > 1
        var warning: Advice?
        if let value = environment["MP_NODES"] {
            if value.trimmingWhitespace == "1" {
                guard inMultiNodeJob, environment["SLURM_STEP_ID"] == nil else { return (.local, nil) }
                return (
                    .local,
                    Advice(
                        message:
                            "MP_NODES=1: the pool uses this node only; the job's other \(nodes - 1) node\(nodes == 2 ? " stays" : "s stay") idle"
                    )
                )
            }
            warning = Advice(
                message:
                    "MP_NODES='\(value)' is ignored: its only value is 1 (keep the pool on this node); unset it to use every node of the job"
            )
        }
        guard inMultiNodeJob else { return (.local, warning) }
        if environment["SLURM_STEP_ID"] != nil {
            let tasks = environment["SLURM_STEP_NUM_TASKS"].flatMap { Int($0.trimmingWhitespace) } ?? 1
            let stepNodes = environment["SLURM_STEP_NUM_NODES"].flatMap { Int($0.trimmingWhitespace) } ?? 1
            guard tasks > 1 || stepNodes > 1 else { return (.local, warning) }
            // Every task finds the same; the first one says so.
            guard (environment["SLURM_PROCID"].flatMap { Int($0.trimmingWhitespace) } ?? 0) == 0 else {
                return (.local, warning)
            }
            let advice = Advice(
                message:
                    "this program runs inside a Slurm job step of \(tasks) tasks on \(stepNodes) nodes (srun in front of it), so each task uses only its own node's CPUs. To use all \(nodes) nodes in one pool, run the program once, directly in the batch script, without srun (see `mp slurm-script --nodes \(nodes)`); the pool then starts its own step with one worker host per node."
            )
            return (.local, advice)
        }
        let cpus = environment["SLURM_JOB_CPUS_PER_NODE"].flatMap(minimumCPUsPerNode)
        return (.nodes(count: nodes, cpusPerTask: cpus), warning)
    }

    /// The fewest CPUs of any node in Slurm's `SLURM_JOB_CPUS_PER_NODE` form, e.g.
    /// `2(x2)` or `4,2(x3)`; `nil` when the value cannot be read.
    static func minimumCPUsPerNode(_ value: String) -> Int? {
        var smallest: Int?
        for part in value.split(separator: ",") {
            let count = part.split(separator: "(").first.flatMap { Int($0.trimmingWhitespace) }
            guard let count, count > 0 else { return nil }
            smallest = min(smallest ?? count, count)
        }
        return smallest
    }
}
