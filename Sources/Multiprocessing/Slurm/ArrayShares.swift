/// Which share of a job array's work this task computes (README "Job arrays").
///
/// `mp slurm-script --array N` writes `MP_ARRAY_SHARES=N` and `MP_ARRAY_KEY=<key>` into
/// the script. They, not the array's own variables, say how many shares there are and
/// which run this is: a task resubmitted alone (`sbatch --array=2 job.slurm`) is a new
/// array job with another `SLURM_ARRAY_JOB_ID` and a `SLURM_ARRAY_TASK_COUNT` of 1.
/// `MP_ARRAY_SHARES=auto` takes them from the array's variables instead (a resubmitted
/// task then cannot find its run). Without `MP_ARRAY_SHARES` nothing is shared: an array
/// task's calls run whole, as before (programs that give each task its own inputs keep
/// working).
struct ArrayShare: Sendable, Equatable {
    /// This task's share, `0..<count`.
    var index: Int
    /// How many shares each shared call is cut into.
    var count: Int
    /// The run's name: its files live in `<directory>/mp-array-<key>`.
    var key: String
    /// Where the run's files live (`MP_ARRAY_DIR`, else `SLURM_SUBMIT_DIR`, else `.`).
    var directory: String

    /// The variables the resolution reads.
    static let variableNames = [
        "MP_ARRAY_SHARES", "MP_ARRAY_KEY", "MP_ARRAY_DIR", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_JOB_ID", "SLURM_SUBMIT_DIR",
    ]

    /// The folder of the run's files: share journals, done marks, the reduction's claim.
    var runDirectory: String { directory + "/mp-array-" + key }

    /// The item indices of share `share` of `shares`, for a call of `items` items: one
    /// contiguous range each, in share order, their sizes differing by at most one (the
    /// first `items % shares` shares have one more). Fixed by the index alone, so every
    /// task, and a task resubmitted later, cuts a call the same way.
    static func range(share: Int, of shares: Int, items: Int) -> Range<Int> {
        precondition(shares > 0 && share >= 0 && share < shares && items >= 0)
        let base = items / shares
        let extra = items % shares
        let lower = share * base + min(share, extra)
        return lower..<(lower + base + (share < extra ? 1 : 0))
    }

    /// This task's items of a call of `items` items.
    func range(items: Int) -> Range<Int> { Self.range(share: index, of: count, items: items) }

    /// The share this task computes, from `environment` (the process's, by default);
    /// `nil` when nothing is shared (no `MP_ARRAY_SHARES`, or not an array task: no
    /// `SLURM_ARRAY_TASK_ID`).
    ///
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when a variable is not a
    ///   whole number, when the task's id is outside `0..<shares` (a task of another
    ///   `--array` range than the script's), or when there is no key.
    static func resolve(_ environment: [String: String]) throws(MultiprocessingError) -> ArrayShare? {
        guard let sharesText = environment["MP_ARRAY_SHARES"]?.trimmingWhitespace, !sharesText.isEmpty,
            let idText = environment["SLURM_ARRAY_TASK_ID"]
        else { return nil }
        guard let id = Int(idText.trimmingWhitespace) else {
            throw MultiprocessingError(
                .invalidArgument,
                "SLURM_ARRAY_TASK_ID='\(idText)' is not a whole number: this is not a Slurm array task")
        }
        func number(_ name: String) throws(MultiprocessingError) -> Int? {
            guard let text = environment[name] else { return nil }
            guard let value = Int(text.trimmingWhitespace) else {
                throw MultiprocessingError(.invalidArgument, "\(name)='\(text)' is not a whole number")
            }
            return value
        }
        var shares: Int
        var share = id
        var key = environment["MP_ARRAY_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if sharesText == "auto" {
            let minimum = try number("SLURM_ARRAY_TASK_MIN") ?? 0
            if let count = try number("SLURM_ARRAY_TASK_COUNT") {
                shares = count
            } else if let maximum = try number("SLURM_ARRAY_TASK_MAX") {
                shares = maximum - minimum + 1
            } else {
                throw MultiprocessingError(
                    .invalidArgument,
                    "MP_ARRAY_SHARES=auto, but Slurm set neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX: set MP_ARRAY_SHARES to the number of tasks"
                )
            }
            share = id - minimum
            key = key ?? environment["SLURM_ARRAY_JOB_ID"]
        } else {
            guard let value = Int(sharesText), value >= 1 else {
                throw MultiprocessingError(
                    .invalidArgument,
                    "MP_ARRAY_SHARES='\(sharesText)' is neither a positive whole number nor auto: set it to the number of tasks of the array (mp slurm-script --array N writes it)"
                )
            }
            shares = value
        }
        guard share >= 0 && share < shares else {
            throw MultiprocessingError(
                .invalidArgument,
                "this array task has SLURM_ARRAY_TASK_ID=\(id), outside the \(shares) shares of the run (MP_ARRAY_SHARES=\(sharesText): tasks \(sharesText == "auto" ? "\(id - share)" : "0") to \((sharesText == "auto" ? id - share : 0) + shares - 1)); each shared call is cut into \(shares) shares by task id, so no share is this task's. Submit the script's own --array range, or resubmit one missing task with sbatch --array=<id> and an id in that range"
            )
        }
        guard let key else {
            throw MultiprocessingError(
                .invalidArgument,
                "MP_ARRAY_KEY is not set (and with MP_ARRAY_SHARES=auto, neither is SLURM_ARRAY_JOB_ID): set MP_ARRAY_KEY to a name for this run, the same in every task (mp slurm-script --array writes one)"
            )
        }
        guard !key.contains("/"), key != ".", key != ".." else {
            throw MultiprocessingError(
                .invalidArgument, "MP_ARRAY_KEY='\(key)' must be a plain name (no '/'): it names a folder")
        }
        let directory =
            environment["MP_ARRAY_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["SLURM_SUBMIT_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "."
        return ArrayShare(index: share, count: shares, key: key, directory: directory)
    }

    /// The shares in `missing`, written for a log line ("1, 3" or "1-3, 5").
    static func describe(_ shares: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        while index < shares.count {
            var end = index
            while end + 1 < shares.count && shares[end + 1] == shares[end] + 1 { end += 1 }
            parts.append(
                end > index + 1
                    ? "\(shares[index])-\(shares[end])" : (index...end).map { "\(shares[$0])" }.joined(separator: ", "))
            index = end + 1
        }
        return parts.joined(separator: ", ")
    }
}
