import Foundation
import Synchronization
import Testing

@testable import Multiprocessing

/// The share arithmetic, the environment's reading and the reduction's atomic step, without
/// worker processes.
@Suite("Job arrays: shares and the reduction's claim")
struct ArrayShareTests {
    @Test("shares cut every call into contiguous ranges, in order, sizes within one of each other")
    func ranges() {
        for shares in 1...9 {
            for items in [0, 1, 2, 3, 7, 8, 9, 64, 100, 1001] {
                let ranges = (0..<shares).map { ArrayShare.range(share: $0, of: shares, items: items) }
                #expect(ranges.first?.lowerBound == 0)
                #expect(ranges.last?.upperBound == items)
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
                let sizes = ranges.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1, "\(shares) shares of \(items): \(sizes)")
            }
        }
        #expect(ArrayShare.range(share: 1, of: 4, items: 10) == 3..<6)
        #expect(ArrayShare.range(share: 3, of: 4, items: 10) == 8..<10)
        #expect(ArrayShare.range(share: 2, of: 4, items: 2) == 2..<2)
    }

    let base = ["SLURM_ARRAY_TASK_ID": "2", "SLURM_SUBMIT_DIR": "/submit", "SLURM_ARRAY_JOB_ID": "77"]

    @Test("the script's variables say the share; without MP_ARRAY_SHARES, or outside an array, nothing is shared")
    func resolve() throws {
        let share = try ArrayShare.resolve(base.merging(["MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run"]) { $1 })
        #expect(share == ArrayShare(index: 2, count: 4, key: "run", directory: "/submit"))
        #expect(share?.runDirectory == "/submit/mp-array-run")
        #expect(try ArrayShare.resolve(base) == nil, "an ordinary array task runs its calls whole")
        #expect(try ArrayShare.resolve(["MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run"]) == nil, "not an array task")
        let moved = try ArrayShare.resolve(
            base.merging(["MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run", "MP_ARRAY_DIR": "/scratch"]) { $1 })
        #expect(moved?.directory == "/scratch")
        // A task resubmitted alone: a new array job of one task, the same run.
        let alone = try ArrayShare.resolve([
            "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_JOB_ID": "90",
            "MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run",
        ])
        #expect(alone == ArrayShare(index: 2, count: 4, key: "run", directory: "."))
    }

    @Test("MP_ARRAY_SHARES=auto falls back to the array's own variables")
    func fallback() throws {
        let auto = try ArrayShare.resolve(
            base.merging([
                "MP_ARRAY_SHARES": "auto", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4",
                "SLURM_ARRAY_TASK_COUNT": "4",
            ]) { $1 })
        #expect(auto == ArrayShare(index: 1, count: 4, key: "77", directory: "/submit"))
        let noCount = try ArrayShare.resolve(
            base.merging(["MP_ARRAY_SHARES": "auto", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "5"]) { $1 })
        #expect(noCount?.count == 6)
    }

    @Test("a task id outside 0..<shares, a bad count or no key is refused with invalidArgument, saying why")
    func refused() {
        let outside = #expect(throws: MultiprocessingError.self) {
            try ArrayShare.resolve(
                base.merging(["SLURM_ARRAY_TASK_ID": "4", "MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run"]) { $1 })
        }
        #expect(outside?.code == .invalidArgument)
        #expect(outside?.message.contains("SLURM_ARRAY_TASK_ID=4, outside the 4 shares") == true, "\(outside!)")
        #expect(outside?.message.contains("0 to 3") == true)
        for (name, value) in [("MP_ARRAY_SHARES", "0"), ("MP_ARRAY_SHARES", "four"), ("MP_ARRAY_KEY", "a/b")] {
            var environment = base.merging(["MP_ARRAY_SHARES": "4", "MP_ARRAY_KEY": "run"]) { $1 }
            environment[name] = value
            let error = #expect(throws: MultiprocessingError.self) { try ArrayShare.resolve(environment) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains(value) == true)
        }
        let noKey = #expect(throws: MultiprocessingError.self) {
            try ArrayShare.resolve(["SLURM_ARRAY_TASK_ID": "0", "MP_ARRAY_SHARES": "2"])
        }
        #expect(noKey?.code == .invalidArgument)
        #expect(noKey?.message.contains("MP_ARRAY_KEY is not set") == true)
    }

    func freshRun(shares: Int, index: Int, directory: String) -> ArrayRun {
        ArrayRun(share: ArrayShare(index: index, count: shares, key: "k", directory: directory))
    }

    @Test("the reduction's claim: of tasks claiming at the same moment exactly one wins, every time")
    func claimRace() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("mp-array-claim-\(UUID())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let shares = 8
        for round in 0..<40 {
            let directory = root + "/\(round)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try freshRun(shares: shares, index: 0, directory: directory).prepare()
            let wins = Atomic<Int>(0)
            let losses = Atomic<Int>(0)
            let ready = Atomic<Int>(0)
            let finished = DispatchGroup()
            for index in 0..<shares {
                let run = freshRun(shares: shares, index: index, directory: directory)
                finished.enter()
                // One thread each (a queue might run them one after another), started together.
                Thread {
                    ready.add(1, ordering: .relaxed)
                    while ready.load(ordering: .relaxed) < shares { sched_yield() }
                    switch try? run.claimReduction() {
                    case .won: wins.add(1, ordering: .relaxed)
                    case .lost(let owner) where owner.hasPrefix("share "):  // the claim is never seen half written
                        losses.add(1, ordering: .relaxed)
                    default: break
                    }
                    finished.leave()
                }.start()
            }
            finished.wait()
            #expect(wins.load(ordering: .relaxed) == 1, "round \(round)")
            #expect(losses.load(ordering: .relaxed) == shares - 1, "round \(round)")
        }
    }

    @Test("done marks, missing shares, and a claim retaken only by the same share")
    func marksAndRetake() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mp-array-marks-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let one = freshRun(shares: 3, index: 1, directory: directory)
        try one.prepare()
        try one.prepare()  // a second task finds the folder there
        #expect(try one.missingShares() == [0, 1, 2])
        try one.markDone(items: 5)
        try one.markDone(items: 5)  // resubmitted: the mark stays
        #expect(try one.missingShares() == [0, 2])
        #expect(try one.claimReduction() == .won)
        #expect(try one.claimReduction() == .retaken)
        guard case .lost(let owner) = try freshRun(shares: 3, index: 2, directory: directory).claimReduction() else {
            Issue.record("share 2 must lose to share 1's claim")
            return
        }
        #expect(owner.hasPrefix("share 1 "))
        #expect(ArrayShare.describe([0, 2, 3, 4, 7]) == "0, 2-4, 7")
        #expect(ArrayShare.describe([1, 2]) == "1, 2")
    }

    @Test("the job script of an array: --array with its throttle, one output per task, the run's variables")
    func jobScript() {
        var script = SlurmJobScript(executable: ".build/release/pi")
        script.cpus = 1
        script.arrayTasks = 4
        script.arrayLimit = 2
        script.arrayKey = "pi-run"
        let text = script.text
        #expect(text.contains("#SBATCH --array=0-3%2\n"))
        #expect(text.contains("#SBATCH --output=pi-%A_%a.out\n"))
        #expect(text.contains("\nexport MP_ARRAY_SHARES=4\nexport MP_ARRAY_KEY=pi-run\n"))
        #expect(text.hasSuffix("srun --cpus-per-task=1 .build/release/pi\n"))
        #expect(script.problems().isEmpty)
        script.nodes = 2
        #expect(script.problems().contains { $0.contains("--array and --nodes") })
        script.nodes = 1
        script.arrayTasks = 0
        #expect(script.problems().contains { $0.contains("--array must be at least 1") })
        #expect(SlurmJobScript.parseArray("4")! == (4, nil))
        #expect(SlurmJobScript.parseArray("4%2")! == (4, 2))
        #expect(SlurmJobScript.parseArray("0-3") == nil)
        #expect(!SlurmJobScript(executable: "x").text.contains("MP_ARRAY"))
    }
}

/// Array tasks as real processes on this machine: the fixture run with the variables
/// Slurm and the job script would set, one task after another or several at once.
@Suite("Job arrays (real processes)", .timeLimit(.minutes(5)))
final class ArrayProcessTests: Sendable {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mp-array-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var counts: String { directory.appendingPathComponent("counts").path }

    func task(
        _ id: Int, of shares: Int, count: Int, mode: Int = 0, sleepMicros: Int = 0, extra: [String: String] = [:]
    ) async throws -> FixtureProcess.Outcome {
        try await FixtureProcess.run(
            ["array-run", "\(count)", "\(mode)", "\(sleepMicros)"],
            environment: [
                "SLURM_ARRAY_TASK_ID": "\(id)", "MP_ARRAY_SHARES": "\(shares)", "MP_ARRAY_KEY": "test",
                "MP_ARRAY_DIR": directory.path, "JOURNAL_COUNTS": counts,
            ].merging(extra) { $1 },
            removing: FixtureProcess.sizingVariables + ArrayShare.variableNames, waitingFor: "array task \(id)")
    }

    func computed() -> [Int] {
        ((try? String(contentsOfFile: counts, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
    }

    func results(_ outcome: FixtureProcess.Outcome) -> [Int] {
        outcome.line("results ").dropFirst(8).split(separator: ",").compactMap { Int($0) }
    }

    @Test(
        "four tasks in turn: three end with status 0 naming the missing shares, the last reduces once; every item computed once",
        arguments: [0, 1, 2, 3])
    func fourTasks(mode: Int) async throws {
        let count = 10
        for id in 0..<3 {
            let outcome = try await task(id, of: 4, count: count, mode: mode)
            #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
            #expect(outcome.lines == ["before"], "the rest of the program does not run: \(outcome.stdout)")
            let missing = ArrayShare.describe(Array((id + 1)..<4))
            let range = ArrayShare.range(share: id, of: 4, items: count)
            #expect(
                outcome.stderr.contains(
                    "array share \(id) of 4 (run test): items \(range.lowerBound)..<\(range.upperBound) of 10 done (\(range.count) computed, 0 from its journal); share\(id == 2 ? "" : "s") \(missing) still missing: this task ends here with status 0"
                ), "\(outcome.stderr)")
        }
        let last = try await task(3, of: 4, count: count, mode: mode)
        #expect(last.status == 0, "\(last.stdout)\(last.stderr)")
        let squares = (0..<count).map { $0 * $0 + 1 }
        #expect(results(last) == (mode == 3 ? [squares.reduce(0, +)] : squares))
        if mode == 1 {
            let order = (last.ints("order") ?? []).map { $0 ?? -1 }
            #expect(!order.isEmpty && order == order.sorted(), "the ordered stream yields in input order: \(order)")
        }
        #expect(last.line("from_journal ") == "from_journal 8", "shares 0-2 hold 3+3+2 items")
        #expect(last.line("second ") == "second 1000001,1002002", "a later call runs whole in the reducing task")
        #expect(
            last.stderr.contains("this task reduces, with 8 items from the other shares' journals"), "\(last.stderr)")
        #expect(computed().sorted() == Array(0..<count) + [1000, 1001], "each item once: \(computed().sorted())")
    }

    @Test("two tasks finishing at the same moment: exactly one reduces, both end with status 0", arguments: 0..<3)
    func race(round: Int) async throws {
        let rendezvous = directory.appendingPathComponent("rendezvous")
        try FileManager.default.createDirectory(at: rendezvous, withIntermediateDirectories: true)
        async let first = task(0, of: 2, count: 20, extra: ["MP_ARRAY_TEST_RENDEZVOUS": rendezvous.path])
        async let second = task(1, of: 2, count: 20, extra: ["MP_ARRAY_TEST_RENDEZVOUS": rendezvous.path])
        let outcomes = try await [first, second]
        for outcome in outcomes {
            #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
            #expect(!outcome.stderr.contains("rendezvous timed out"))
        }
        let reducers = outcomes.filter { $0.line("results ") != "" }
        #expect(reducers.count == 1, "\(outcomes.map(\.stdout))")
        #expect(results(reducers.first ?? outcomes[0]) == (0..<20).map { $0 * $0 + 1 })
        let other = outcomes.first { $0.line("results ") == "" }
        #expect(
            other?.stderr.contains("every share is done and another task reduces (share ") == true,
            "\(other?.stderr ?? "")")
        #expect(computed().sorted() == Array(0..<20) + [1000, 1001])
    }

    @Test("a failed share: its task fails naming the item; resubmitting it computes only what failed, and reduces")
    func failedShare() async throws {
        let zero = try await task(0, of: 2, count: 8)
        #expect(zero.status == 0 && zero.lines == ["before"], "\(zero.stderr)")
        let failed = try await task(1, of: 2, count: 8, extra: ["ARRAY_FAIL_AT": "6"])
        #expect(failed.status != 0)
        #expect(failed.line("ERROR ").hasPrefix("ERROR code=function threw item=6 "), "\(failed.stdout)")
        #expect(failed.line("results ") == "")
        let before = computed().count
        let again = try await task(1, of: 2, count: 8)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(results(again) == (0..<8).map { $0 * $0 + 1 })
        // Share 1 is items 4..<8: the failed item and any cancelled with it are computed again, no more.
        let redone = Array(computed().dropFirst(before)).filter { $0 < 1000 }
        #expect(!redone.isEmpty && redone.allSatisfy { (4..<8).contains($0) } && redone.contains(6), "\(redone)")
        #expect(again.line("from_journal ") == "from_journal \(8 - redone.count)")
    }

    @Test("the reducing task resubmitted reduces again from the journals; another share's task does not")
    func resubmitted() async throws {
        for id in 0..<2 { _ = try await task(id, of: 2, count: 6) }
        let before = computed().count
        let reducer = try await task(1, of: 2, count: 6)
        #expect(reducer.status == 0)
        #expect(results(reducer) == (0..<6).map { $0 * $0 + 1 })
        #expect(reducer.line("from_journal ") == "from_journal 6")
        #expect(reducer.stderr.contains("it reduces again"), "\(reducer.stderr)")
        let other = try await task(0, of: 2, count: 6)
        #expect(other.status == 0 && other.lines == ["before"])
        #expect(computed().count == before + 2, "only the later call is computed again")
    }

    @Test("a task id outside the shares fails the call with invalidArgument, computing nothing")
    func outsideShares() async throws {
        let outcome = try await task(4, of: 4, count: 8)
        #expect(outcome.status == 3)
        #expect(
            outcome.line("ERROR ").hasPrefix(
                "ERROR code=invalid argument item=none this array task has SLURM_ARRAY_TASK_ID=4"))
        #expect(computed().isEmpty)
    }
}

/// `pi` as a job array on the real local Slurm (two emulated nodes, 4 CPUs in all, shared
/// with other tests: waits are generous). The submit folder is a fresh temporary folder,
/// so the run's files and the tasks' outputs are the test's own.
@Suite("Job arrays under real Slurm", .serialized, .enabled(if: SlurmCluster.enabled), .timeLimit(.minutes(10)))
final class SlurmArrayTests: Sendable {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mp-slurm-array-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Writes `job.slurm` with `mp slurm-script --array <array> --cpus 1` for `pi <arguments>`.
    func writeScript(array: String, _ arguments: [String]) async throws -> String {
        let made = try await FixtureProcess.runProcess(
            [
                SlurmCluster.binary("mp"), "slurm-script", "--array", array, "--cpus", "1", "--mem-per-cpu", "512M",
                "--time", "5", "--job-name", "piarr", SlurmCluster.binary("pi"), "--",
            ] + arguments, waitingFor: "mp slurm-script")
        #expect(made.status == 0, "\(made.stderr)")
        let path = directory.appendingPathComponent("job.slurm").path
        try made.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `sbatch` run in the submit folder, outside any job; `--wait` waits for every task.
    func sbatch(_ arguments: [String], environment: [String: String] = [:]) async throws -> FixtureProcess.Outcome {
        try await FixtureProcess.runProcess(
            ["/usr/bin/env", "sbatch", "--parsable"] + arguments, environment: environment, removingPrefix: "SLURM_",
            directory: directory, timeout: .seconds(420), waitingFor: "sbatch \(arguments.joined(separator: " "))")
    }

    /// The tasks' output files of array job `job`, by task id.
    func outputs(_ job: String) -> [Int: String] {
        var found: [Int: String] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where name.hasPrefix("piarr-\(job)_") && name.hasSuffix(".out") {
            let task = Int(name.dropFirst("piarr-\(job)_".count).dropLast(4)) ?? -1
            found[task] = (try? String(contentsOfFile: directory.appendingPathComponent(name).path, encoding: .utf8))
        }
        return found
    }

    /// The JSON lines among all the outputs.
    func jsonLines(_ outputs: [Int: String]) -> [[String: Any]] {
        outputs.values.flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix("{") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// `pi`'s hits for these arguments in one run on this machine, without Slurm.
    func oneNodeHits(_ arguments: [String]) async throws -> Int {
        let run = try await FixtureProcess.runProcess(
            [SlurmCluster.binary("pi"), "--workers", "2"] + arguments, removingPrefix: "SLURM_",
            timeout: .seconds(120), waitingFor: "pi on one node")
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        return object?["hits"] as? Int ?? -1
    }

    func jobID(_ outcome: FixtureProcess.Outcome) -> String {
        String(outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first ?? "")
    }

    static let piArguments = ["--chunks", "64", "--samples", "100000", "--json"]

    /// Runs a whole array with `sbatch --wait`; checks one JSON line in all, equal to a one-node run.
    func wholeArray(array: String, tasks: Int, extraEnvironment: [String: String] = [:]) async throws -> [Int: String] {
        let script = try await writeScript(array: array, Self.piArguments)
        let submitted = try await sbatch(["--wait", script], environment: extraEnvironment)
        #expect(submitted.status == 0, "every task ends with status 0: \(submitted.stderr)")
        let outputs = outputs(jobID(submitted))
        try await checkReduced(outputs, tasks: tasks)
        return outputs
    }

    /// One JSON line across the tasks' outputs, with a one-node run's hits; the others ended with status 0.
    func checkReduced(_ outputs: [Int: String], tasks: Int) async throws {
        #expect(outputs.count == tasks, "one output file per task: \(outputs.keys.sorted())")
        let lines = jsonLines(outputs)
        #expect(lines.count == 1, "exactly one JSON line across the tasks: \(outputs)")
        let expected = try await oneNodeHits(Self.piArguments)
        #expect(lines.first?["hits"] as? Int == expected, "\(lines)")
        #expect(lines.first?["workers"] as? Int == 1)
        // The reducing task computed its own share (64 / tasks chunks) and took the rest from the journals.
        #expect(lines.first?["computed"] as? Int == 64 / tasks, "\(lines)")
        #expect(lines.first?["from_journal"] as? Int == 64 - 64 / tasks, "\(lines)")
        let ended = outputs.values.filter { $0.contains("this task ends here with status 0") }
        #expect(ended.count == tasks - 1, "\(outputs)")
    }

    /// Waits (up to five minutes) until no task of `job` is left in the queue; calls
    /// `sample` with the number of its tasks running, at each look.
    func waitUntilGone(_ job: String, sample: (Int) -> Void = { _ in }) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline {
            let left = try await SlurmCluster.run("squeue", ["-h", "-j", job, "-o", "%T"], waitingFor: "squeue")
            let states = left.stdout.split(separator: "\n")
            if left.status == 0 && states.isEmpty { return }
            sample(states.filter { $0 == "RUNNING" }.count)
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("array job \(job) did not end within five minutes")
    }

    @Test("mp slurm-script --array 4 --cpus 1 of pi: one JSON line across the tasks, the hits of a one-node run")
    func piArray() async throws {
        guard SlurmCluster.require() else { return }
        let outputs = try await wholeArray(array: "4", tasks: 4)
        #expect(
            outputs.values.contains { $0.contains("this task reduces, with 48 items from the other shares' journals") })
    }

    @Test("a throttled array (--array 4%2): Slurm runs at most 2 at once, and the run reduces once, right")
    func throttled() async throws {
        guard SlurmCluster.require() else { return }
        let script = try await writeScript(array: "4%2", Self.piArguments)
        #expect(try String(contentsOfFile: script, encoding: .utf8).contains("#SBATCH --array=0-3%2\n"))
        let submitted = try await sbatch([script])
        let job = jobID(submitted)
        let shown = try await SlurmCluster.run("scontrol", ["show", "job", job], waitingFor: "scontrol show job")
        #expect(shown.stdout.contains("ArrayTaskThrottle=2"), "\(shown.stdout)")
        var mostRunning = 0
        try await waitUntilGone(job) { mostRunning = max(mostRunning, $0) }
        #expect(mostRunning <= 2)
        let states = try await SlurmCluster.run("scontrol", ["show", "job", job], waitingFor: "scontrol show job")
        let completed = states.stdout.components(separatedBy: "JobState=COMPLETED").count - 1
        #expect(completed == 4, "every task ends with status 0: \(states.stdout)")
        try await checkReduced(outputs(job), tasks: 4)
    }

    @Test("two tasks finishing at the same moment under Slurm: exactly one reduces")
    func race() async throws {
        guard SlurmCluster.require() else { return }
        let rendezvous = directory.appendingPathComponent("rendezvous")
        try FileManager.default.createDirectory(at: rendezvous, withIntermediateDirectories: true)
        let outputs = try await wholeArray(
            array: "2", tasks: 2, extraEnvironment: ["MP_ARRAY_TEST_RENDEZVOUS": rendezvous.path])
        #expect(!outputs.values.contains { $0.contains("rendezvous timed out") }, "the two tasks did not run together")
        #expect(outputs.values.contains { $0.contains("every share is done and another task reduces (share ") })
    }

    @Test("a task killed mid-share, then resubmitted alone: it resumes its share and reduces, the hits exact")
    func killedAndResubmitted() async throws {
        guard SlurmCluster.require() else { return }
        // About 3 s a chunk here: a share of 4 chunks outlives the kill.
        let arguments = ["--chunks", "16", "--samples", "400000000", "--json"]
        let script = try await writeScript(array: "4", arguments)
        let submitted = try await sbatch([script])
        let job = jobID(submitted)
        #expect(!job.isEmpty, "\(submitted.stderr)")
        // Kill task 2 once it runs and has journaled a chunk (or after 20 s running).
        let run = try String(contentsOfFile: script, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("export MP_ARRAY_KEY=") }.map { String($0.dropFirst("export MP_ARRAY_KEY=".count)) }
        let journal = directory.appendingPathComponent("mp-array-\(run ?? "")/share-2.journal").path
        let deadline = ContinuousClock.now + .seconds(300)
        var runningSince: ContinuousClock.Instant?
        var emptySize: Int?  // the journal's size before its first results
        var journaledBeforeKill = false
        while ContinuousClock.now < deadline {
            let state = try await SlurmCluster.run(
                "squeue", ["-h", "-j", "\(job)_2", "-o", "%T"], waitingFor: "squeue")
            if state.stdout.contains("RUNNING") {
                runningSince = runningSince ?? .now
                let size = (try? FileManager.default.attributesOfItem(atPath: journal)[.size] as? Int) ?? 0
                if size > 0 { emptySize = emptySize ?? size }
                if let emptySize, size > emptySize {
                    journaledBeforeKill = true
                    break
                }
                if ContinuousClock.now - runningSince! > .seconds(20) { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let killed = try await SlurmCluster.run(
            "scancel", ["--signal=KILL", "--full", "\(job)_2"], waitingFor: "scancel task 2")
        #expect(killed.status == 0, "\(killed.stderr)")
        try await waitUntilGone(job)
        let first = outputs(job)
        #expect(jsonLines(first).isEmpty, "no task reduced while share 2 was missing: \(first)")
        for task in [0, 1, 3] {
            #expect(
                first[task]?.contains("this task ends here with status 0") == true, "task \(task): \(first[task] ?? "")"
            )
        }
        #expect(first.values.contains { $0.contains("share 2 still missing") }, "\(first)")
        // Resubmit task 2 alone: a new array job of one task.
        let again = try await sbatch(["--wait", "--array=2", script])
        #expect(again.status == 0, "\(again.stderr)")
        let second = outputs(jobID(again))
        let lines = jsonLines(second)
        #expect(lines.count == 1, "\(second)")
        let expected = try await oneNodeHits(arguments)
        #expect(lines.first?["hits"] as? Int == expected, "\(lines)")
        let computed = lines.first?["computed"] as? Int ?? -1
        #expect(computed >= 0 && computed <= 4, "at most share 2's 4 chunks computed again: \(lines)")
        #expect(lines.first?["from_journal"] as? Int == 16 - computed)
        if journaledBeforeKill {
            #expect(computed < 4, "the killed task had journaled a chunk: it is taken, not computed again")
        }
        #expect(
            second[2]?.contains("items 8..<12 of 16 done (\(computed) computed, \(4 - computed) from its journal)")
                == true,
            "\(second)")
    }
}
