import ArgumentParser
import Foundation
import Multiprocessing

/// `mp`: answers the questions people ask when a pool does not do what they expected.
@main
struct MP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mp",
        abstract: "Tools for swift-multiprocessing programs on Slurm clusters.",
        discussion: """
            Run `mp cpus` where your program runs (e.g. `srun mp cpus` inside a job) to see how \
            many workers a default pool gets and why; `mp slurm-script` writes a job script.
            """,
        subcommands: [CPUs.self, SlurmScript.self, JournalCommand.self]
    )
}

/// `mp cpus`: how many workers a default pool gets here, and why.
struct CPUs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpus",
        abstract: "Print how many workers a default pool would have here, and why.",
        discussion: """
            Applies the library's rules: MP_WORKERS if set; else the CPUs of this process's \
            affinity mask (what the job step was given), lowered by a cgroup CPU quota, by \
            SLURM_CPUS_PER_TASK when smaller, and (without CPU binding and without -c) by \
            SLURM_CPUS_ON_NODE. Values that are not positive whole numbers are ignored, with the \
            reason. Inside a job, run it as a step: `srun mp cpus`.
            """
    )

    @Flag(help: "Print only one JSON object: workers, source, reason, ignored.")
    var json = false

    func run() throws {
        let decision = Multiprocessing.defaultWorkerCount()
        let cpus = WorkerCount.SystemCPUs.current()
        let environment = ProcessInfo.processInfo.environment
        if json {
            let object: [String: Any] = [
                "workers": decision.count,
                "source": decision.source.rawValue,
                "reason": decision.reason,
                "ignored": decision.ignored.map {
                    ["variable": $0.variable, "value": $0.value, "reason": $0.reason, "message": $0.message]
                },
                "affinity": cpus.affinity,
                "online": cpus.online,
                "cgroupQuota": cpus.cgroupQuota.map { $0 as Any } ?? NSNull(),
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("workers: \(decision.count) (decided by: \(decision.source.rawValue))")
        print("why: \(decision.reason)")
        print("affinity mask: \(cpus.affinity) CPU\(cpus.affinity == 1 ? "" : "s") of \(cpus.online) online")
        print("cgroup CPU quota: \(cpus.cgroupQuota.map { "\($0) CPUs" } ?? "none")")
        for name in ["MP_WORKERS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_ID", "SLURM_STEP_ID"] {
            print("\(name): \(environment[name] ?? "(unset)")")
        }
        for value in decision.ignored { print("ignored: \(value.message)") }
    }
}

/// `mp slurm-script`: a ready `job.slurm` for a built executable.
struct SlurmScript: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm-script",
        abstract: "Print a job script that runs a built executable on one node with N CPUs.",
        discussion: """
            Prints to stdout; save it and submit it with sbatch, e.g.
              mp slurm-script --cpus 8 --time 01:00:00 .build/release/pi -- --json > job.slurm
              sbatch job.slurm
            The script asks for one task with --cpus CPUs and runs the executable with srun; a \
            default pool then starts one worker per CPU. With --requeue, a job that reaches its \
            time limit requeues itself and the next run resumes from the journal:
              mp slurm-script --requeue --time 04:00:00 --cpus 8 .build/release/pi -- --json > job.slurm
            With --array N, the script is a job array of N such tasks: the program's first pool call \
            is shared among them and reduced in the task that completes it (README "Job arrays").
            """
    )

    @Option(help: "CPUs for the task (--cpus-per-task): the workers of a default pool.")
    var cpus = 4

    @Option(name: .customLong("mem-per-cpu"), help: "Memory per CPU: <n>[K|M|G|T], e.g. 4G.")
    var memPerCPU = "4G"

    @Option(help: "Time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.")
    var time = "00:10:00"

    @Option(help: "Nodes: above 1, one pool spans every node, with --cpus CPUs on each.")
    var nodes = 1

    @Option(name: .customLong("job-name"), help: "Job name (default: the executable's name).")
    var jobName: String?

    @Option(help: "Partition (queue) to submit to.")
    var partition: String?

    @Option(help: "Account to charge.")
    var account: String?

    @Option(name: .customLong("mail-user"), help: "Address for mail when the job ends or fails.")
    var mailUser: String?

    @Flag(
        help:
            "Requeue the job before its time limit and resume from the journal (--requeue, --open-mode=append, --signal=USR1@LEAD, MP_JOURNAL)."
    )
    var requeue = false

    @Option(
        name: .customLong("requeue-lead"),
        help: "With --requeue: seconds before the limit at which Slurm warns (default: a sixth of --time, at least 10)."
    )
    var requeueLead: Int?

    @Option(
        help:
            "A journal file for the program (MP_JOURNAL); with --requeue the default is <job name>-<job id>.journal in the submit directory."
    )
    var journal: String?

    @Option(
        name: .customLong("max-restarts"), help: "With --requeue: the most restarts (MP_MAX_RESTARTS; default 100).")
    var maxRestarts: Int?

    @Option(
        help:
            "A job array of N tasks (N%K: at most K at once) that share the program's first pool call and reduce it in the last task to finish."
    )
    var array: String?

    @Option(
        name: .customLong("array-key"),
        help:
            "The array run's name (MP_ARRAY_KEY; its files go in mp-array-<key>); default: the job name and a random suffix."
    )
    var arrayKey: String?

    @Argument(help: "The built executable, as the job will find it (e.g. .build/release/pi).")
    var executable: String

    @Argument(parsing: .postTerminator, help: "Arguments for the executable, after --.")
    var arguments: [String] = []

    func makeScript() -> SlurmJobScript {
        var script = SlurmJobScript(executable: executable)
        script.arguments = arguments
        script.cpus = cpus
        script.memoryPerCPU = memPerCPU
        script.time = time
        script.nodes = nodes
        script.jobName = jobName
        script.partition = partition
        script.account = account
        script.mailUser = mailUser
        script.requeue = requeue
        script.requeueLead = requeueLead
        script.journal = journal
        script.maximumRestarts = maxRestarts
        if let array {
            let parsed = SlurmJobScript.parseArray(array)
            script.arrayTasks = parsed?.tasks ?? 0
            script.arrayLimit = parsed?.limit
            script.arrayKey = arrayKey ?? generatedArrayKey
        }
        return script
    }

    /// A fresh run name per script written: resubmitting the same script continues its run.
    var generatedArrayKey: String {
        let name = jobName ?? String(executable.split(separator: "/").last ?? "job")
        return name + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }

    func validate() throws {
        if let array, SlurmJobScript.parseArray(array) == nil {
            throw ValidationError("--array '\(array)' must be N or N%K (N tasks, at most K at once), e.g. 4 or 4%2")
        }
        let problems = makeScript().problems()
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func run() {
        print(makeScript().text, terminator: "")
    }
}

/// `mp journal FILE`: the calls a journal holds.
struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Print the calls a journal file holds (function, items, build) and whether its tail was torn.",
        discussion: """
            A journal is what ProcessPool.Options.journalPath (or MP_JOURNAL=path) writes. The \
            results themselves are in the program's binary encoding: export them as JSON lines \
            from the program (MP_JOURNAL_EXPORT=path, or ProcessPool.exportJournal).
            """
    )

    @Argument(help: "The journal file.")
    var file: String

    func run() throws {
        let summary: JournalSummary
        do {
            summary = try JournalSummary.read(path: file)
        } catch let error as MultiprocessingError {
            throw ValidationError(error.message)
        }
        print("\(file): \(summary.calls.count) call\(summary.calls.count == 1 ? "" : "s"), \(summary.validBytes) bytes")
        for call in summary.calls {
            let total = call.itemCount.map { " of \($0)" } ?? ""
            print(
                "call \(call.ordinal): \(call.name) of \(call.functionType) -> \(call.outputType): \(call.itemsRecorded)\(total) items recorded, \(call.runs) run\(call.runs == 1 ? "" : "s"), state \(call.state), build \(call.build)"
            )
        }
        print(
            summary.tornBytes == 0
                ? "tail: clean"
                : "tail: torn (\(summary.tornBytes) bytes after the last whole record; dropped on next open)")
    }
}
