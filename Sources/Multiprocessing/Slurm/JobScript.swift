/// A `job.slurm` for a built executable (what `mp slurm-script` prints). On one node: one
/// task with N CPUs, `srun` of the binary. On several nodes: one task per node with N CPUs
/// each, and the binary run once, directly in the batch script (no `srun`): its default
/// pool starts one worker host per node itself.
///
/// `package`: only the `mp` tool uses it; programs run `mp slurm-script` instead (see the
/// README's "API changes").
package struct SlurmJobScript: Sendable, Equatable {
    /// The executable to run, as the script will name it (relative to where `sbatch` runs).
    package var executable: String
    /// Arguments after the executable.
    package var arguments: [String] = []
    /// `--cpus-per-task`: the workers of the default pool.
    package var cpus: Int = 4
    /// `--mem-per-cpu`, e.g. `4G`.
    package var memoryPerCPU: String = "4G"
    /// `--time`, in a form Slurm accepts.
    package var time: String = "00:10:00"
    /// `--nodes`: above 1, one pool spans every node (N CPUs on each).
    package var nodes: Int = 1
    /// `--job-name` (default: the executable's file name).
    package var jobName: String?
    /// `--partition`, when given.
    package var partition: String?
    /// `--account`, when given.
    package var account: String?
    /// `--mail-user` (with `--mail-type=END,FAIL`), when given.
    package var mailUser: String?
    /// Requeue the job before its time limit and resume from the journal: `--requeue`,
    /// `--open-mode=append`, `--signal=USR1@LEAD` and `MP_JOURNAL` (see the README, "Jobs
    /// that outlive their time limit").
    package var requeue = false
    /// With ``requeue``: seconds before the limit at which Slurm sends SIGUSR1 (default:
    /// a sixth of ``time``, at least 10 s; Slurm may send it up to a minute early).
    package var requeueLead: Int?
    /// `MP_JOURNAL` for the program. Default with ``requeue``:
    /// `$SLURM_SUBMIT_DIR/<job name>-$SLURM_JOB_ID.journal` (the same for every run of the
    /// job); without it, no journal unless given.
    package var journal: String?
    /// With ``requeue``: `MP_MAX_RESTARTS`, the most restarts (default: the library's, 100).
    package var maximumRestarts: Int?

    /// `--array=0-(N-1)`: above 0, a job array of N tasks; the program's first pool call is
    /// shared among them and reduced in the task that completes it (README "Job arrays").
    package var arrayTasks: Int?
    /// `%K` after the array range: at most K tasks run at once.
    package var arrayLimit: Int?
    /// `MP_ARRAY_KEY`, the run's name (the run's files are in `mp-array-<key>` in the
    /// submit folder); default: the job name.
    package var arrayKey: String?

    /// A script for `executable` with the defaults (4 CPUs, 4G per CPU, 10 minutes).
    package init(executable: String) {
        self.executable = executable
    }

    /// Checks every value; returns the problems, each naming the option and what Slurm accepts.
    package func problems() -> [String] {
        var problems: [String] = []
        if executable.isEmpty { problems.append("the executable must be named") }
        if cpus < 1 { problems.append("--cpus must be at least 1 (it becomes --cpus-per-task); \(cpus) was given") }
        if nodes < 1 { problems.append("--nodes must be at least 1; \(nodes) was given") }
        if !Self.isValidMemory(memoryPerCPU) {
            problems.append(
                "--mem-per-cpu '\(memoryPerCPU)' is not a size Slurm accepts: write a positive whole number with an optional unit K, M, G or T (e.g. 4G, 500M)"
            )
        }
        if !Self.isValidTime(time) {
            problems.append(
                "--time '\(time)' is not a time Slurm accepts: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 30, 01:30:00, 2-00)"
            )
        }
        problems += arrayProblems()
        if requeue, Self.isValidTime(time), let limit = Self.seconds(ofTime: time) {
            if let lead = requeueLead, lead < 1 || lead >= limit {
                problems.append(
                    "--requeue-lead \(lead) must be at least 1 second and less than the time limit (\(limit) s)")
            } else if requeueLead == nil && limit <= Self.minimumLead {
                problems.append(
                    "--time \(time) is too short to requeue before it: the warning comes at least \(Self.minimumLead) s before the limit; ask for more time"
                )
            }
        }
        if requeueLead != nil && !requeue { problems.append("--requeue-lead needs --requeue") }
        if let maximumRestarts, maximumRestarts < 0 {
            problems.append("--max-restarts must be 0 or more; \(maximumRestarts) was given")
        }
        if maximumRestarts != nil && !requeue { problems.append("--max-restarts needs --requeue") }
        if let journal, journal.isEmpty || journal.contains("\n") {
            problems.append("--journal must be a path on one line")
        }
        for (option, value) in [
            ("--job-name", jobName), ("--partition", partition), ("--account", account), ("--mail-user", mailUser),
        ] {
            if let value, value.isEmpty || value.contains(where: { $0 == "\n" || $0 == " " }) {
                problems.append("\(option) '\(value)' must be one word")
            }
        }
        return problems
    }

    /// `<n>[K|M|G|T]` with n a positive whole number.
    package static func isValidMemory(_ text: String) -> Bool {
        var digits = Substring(text)
        if let last = digits.last, "KMGTkmgt".contains(last) { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits) else { return false }
        return value > 0
    }

    /// The time forms of `sbatch --time`: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    package static func isValidTime(_ text: String) -> Bool {
        func numbers(_ part: Substring) -> [Int]? {
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            let values = fields.map { field -> Int? in
                guard !field.isEmpty, field.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
                return Int(field)
            }
            return values.contains(where: { $0 == nil }) ? nil : values.map { $0! }
        }
        let dash = text.split(separator: "-", omittingEmptySubsequences: false)
        switch dash.count {
        case 1:
            guard let parts = numbers(dash[0]), (1...3).contains(parts.count) else { return false }
            if parts.count >= 2 && parts.last! >= 60 { return false }
            if parts.count == 3 && parts[1] >= 60 { return false }
            return parts.contains { $0 > 0 }
        case 2:
            guard let days = numbers(dash[0]), days.count == 1, let parts = numbers(dash[1]),
                (1...3).contains(parts.count)
            else { return false }
            if parts[0] >= 24 { return false }
            if parts.dropFirst().contains(where: { $0 >= 60 }) { return false }
            return days[0] > 0 || parts.contains { $0 > 0 }
        default:
            return false
        }
    }

    /// The least lead of the warning before the limit (`--signal=USR1@LEAD`): Slurm checks
    /// time limits about every 30 s, so a shorter lead may come too late.
    static let minimumLead = 10

    /// The seconds of a `--time` value (`nil` when it is not one); `MM` alone is minutes.
    package static func seconds(ofTime text: String) -> Int? {
        guard isValidTime(text) else { return nil }
        let dash = text.split(separator: "-")
        let days = dash.count == 2 ? Int(dash[0])! : 0
        let parts = dash.last!.split(separator: ":").map { Int($0)! }
        let clock: Int
        if dash.count == 2 {
            // D-HH, D-HH:MM, D-HH:MM:SS
            clock = parts[0] * 3600 + (parts.count > 1 ? parts[1] * 60 : 0) + (parts.count > 2 ? parts[2] : 0)
        } else {
            switch parts.count {
            case 1: clock = parts[0] * 60  // MM
            case 2: clock = parts[0] * 60 + parts[1]  // MM:SS
            default: clock = parts[0] * 3600 + parts[1] * 60 + parts[2]  // HH:MM:SS
            }
        }
        return days * 86_400 + clock
    }

    /// The lead of SIGUSR1 before the limit: ``requeueLead``, else a sixth of the limit
    /// and at least `minimumLead` (10) s.
    package var effectiveRequeueLead: Int {
        if let requeueLead { return requeueLead }
        return max(Self.minimumLead, (Self.seconds(ofTime: time) ?? 0) / 6)
    }

    /// The script's text.
    package var text: String {
        let name = jobName ?? String(executable.split(separator: "/").last ?? "job")
        let product = String(executable.split(separator: "/").last ?? "")
        var lines = ["#!/bin/bash"]
        if nodes > 1 {
            lines += [
                "# Runs \(executable) once, here in the batch script, with one process pool over",
                "# \(nodes) nodes: the pool starts one worker host per node (one srun step), each with",
                "# one worker per CPU of its node (\(cpus) here), and the results come back to this program.",
                "# The executable must be at the same path on every node: a shared filesystem, or",
                "# copy it to node-local disk first (sbcast) and run that copy.",
            ]
        } else {
            lines += [
                "# Runs \(executable) on one node: one task with \(cpus) CPUs; the program's default",
                "# process pool starts one worker per CPU of the step (run `srun mp cpus` to check).",
            ]
        }
        lines += [
            "# Build first, on the login node, from the package root (no Swift needed on the nodes):",
            "#   swift build -c release --static-swift-stdlib --product \(product)",
            "# then submit from the package root:  sbatch job.slurm",
            "#SBATCH --job-name=\(name)",
            "#SBATCH --nodes=\(nodes)",
            nodes > 1 ? "#SBATCH --ntasks-per-node=1" : "#SBATCH --ntasks=1",
            "#SBATCH --cpus-per-task=\(cpus)",
            "#SBATCH --mem-per-cpu=\(memoryPerCPU)",
            "#SBATCH --time=\(time)",
            "#SBATCH --output=\(name)-\(arrayTasks == nil ? "%j" : "%A_%a").out",
        ]
        if let partition { lines.append("#SBATCH --partition=\(partition)") }
        if let account { lines.append("#SBATCH --account=\(account)") }
        if let mailUser {
            lines.append("#SBATCH --mail-user=\(mailUser)")
            lines.append("#SBATCH --mail-type=END,FAIL")
        }
        if requeue {
            lines += [
                "#SBATCH --requeue",
                "#SBATCH --open-mode=append",
                "#SBATCH --signal=USR1@\(effectiveRequeueLead)",
            ]
        }
        if let directive = arrayDirective { lines.append(directive) }
        lines.append("")
        lines += arrayLines(name: name)
        if requeue {
            lines += [
                "# Requeue before the time limit: Slurm sends SIGUSR1 about \(effectiveRequeueLead) s before it (up to a",
                "# minute early). The pool then makes its journal durable, says so in this file, runs",
                "# `scontrol requeue` and exits; the next run (same job id, after Slurm's requeue delay)",
                "# takes every finished item from the journal. This file keeps every run's lines. A run",
                "# that finished no item, or a job past MP_MAX_RESTARTS restarts, is not requeued.",
                "# scancel and the limit itself (SIGTERM) stop the program in order, never requeue.",
            ]
        }
        if let journal {
            lines.append("export MP_JOURNAL=\(Self.shellQuoted(journal))")
        } else if requeue {
            lines.append("export MP_JOURNAL=\"${MP_JOURNAL:-$SLURM_SUBMIT_DIR/\(name)-$SLURM_JOB_ID.journal}\"")
        }
        if let maximumRestarts, requeue { lines.append("export MP_MAX_RESTARTS=\(maximumRestarts)") }
        if requeue {
            lines.append(
                "echo \"job $SLURM_JOB_ID: run $(( ${SLURM_RESTART_COUNT:-0} + 1 )) started on $(hostname) at $(date -u +%FT%TZ)\""
            )
            lines.append("")
        }
        let quoted = ([executable] + arguments).map(Self.shellQuoted).joined(separator: " ")
        if nodes > 1 {
            lines.append("# No srun in front: the program runs once; its pool starts the step on every node.")
            lines.append(quoted)
        } else {
            lines.append("# One step with all the task's CPUs; the workers inherit its CPU binding.")
            lines.append("srun --cpus-per-task=\(cpus) \(quoted)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `#SBATCH --array=0-(N-1)[%K]` (none without ``arrayTasks``).
    var arrayDirective: String? {
        arrayTasks.map { "#SBATCH --array=0-\($0 - 1)\(arrayLimit.map { "%\($0)" } ?? "")" }
    }

    /// The job array's variables, with what they do (none without ``arrayTasks``).
    func arrayLines(name: String) -> [String] {
        guard let tasks = arrayTasks else { return [] }
        return [
            "# Job array: each of the \(tasks) tasks computes one share of the program's first pool call,",
            "# journaled in mp-array-<key> in the submit folder; the task that completes the last",
            "# share reduces and runs the rest of the program (the others end with status 0).",
            "# A failed task: resubmit it alone (sbatch --array=<id> job.slurm); the run resumes.",
            "export MP_ARRAY_SHARES=\(tasks)",
            "export MP_ARRAY_KEY=\(Self.shellQuoted(arrayKey ?? name))",
            "",
        ]
    }

    func arrayProblems() -> [String] {
        var problems: [String] = []
        if let tasks = arrayTasks, tasks < 1 { problems.append("--array must be at least 1 task; \(tasks) was given") }
        if let limit = arrayLimit, limit < 1 { problems.append("--array's %K must be at least 1; \(limit) was given") }
        if arrayTasks != nil && nodes > 1 {
            problems.append(
                "--array and --nodes above 1 do not go together: an array shares the work among one-node tasks (choose one)"
            )
        }
        let plain: (Character) -> Bool = { $0.isLetter || $0.isNumber || "-_.".contains($0) }
        if let key = arrayKey, key.isEmpty || !key.allSatisfy(plain) {
            problems.append("--array-key '\(key)' must be a plain name: letters, digits, '-', '_' and '.'")
        }
        return problems
    }

    /// `N` or `N%K` (the form of `mp slurm-script --array`); `nil` when it is neither.
    package static func parseArray(_ text: String) -> (tasks: Int, limit: Int?)? {
        let parts = text.split(separator: "%", omittingEmptySubsequences: false)
        guard parts.count <= 2, let tasks = Int(parts[0]) else { return nil }
        if parts.count == 2 {
            guard let limit = Int(parts[1]) else { return nil }
            return (tasks, limit)
        }
        return (tasks, nil)
    }

    static func shellQuoted(_ word: String) -> String {
        let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        if safe && !word.isEmpty { return word }
        return "'" + word.replacingAll("'", with: "'\\''") + "'"
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
