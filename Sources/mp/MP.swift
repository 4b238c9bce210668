import ArgumentParser
import Multiprocessing

/// `mp`: answers the questions people ask when a pool does not do what they expected.
@main
struct MP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mp",
        abstract: "Tools for swift-multiprocessing.",
        subcommands: [CPUs.self]
    )
}

/// `mp cpus`: how many workers a default pool gets here, and which rule decided.
struct CPUs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpus",
        abstract: "Print how many workers a default pool gets here, and why.",
        discussion: """
            Applies the same rules as the library: MP_WORKERS, then the CPU affinity mask \
            lowered by a cgroup quota, SLURM_CPUS_PER_TASK and (without binding) \
            SLURM_CPUS_ON_NODE. Run it where your program runs, e.g. `srun mp cpus`.
            """
    )

    @Flag(help: "Print only the number.")
    var quiet = false

    func run() {
        let decision = Multiprocessing.defaultWorkerCount()
        if quiet {
            print(decision.count)
            return
        }
        print("\(decision.count) (decided by: \(decision.source.rawValue))")
        print("why: \(decision.reason)")
        for warning in decision.warnings { print("warning: \(warning)") }
    }
}
