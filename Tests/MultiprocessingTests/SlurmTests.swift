import Foundation
import Testing

/// A real Slurm (slurmctld + two slurmd, started by `scripts/slurm/start`), and the
/// release binaries built with `--static-swift-stdlib` by `scripts/test`.
///
/// Without a reachable Slurm the tests are skipped with a loud message, except under
/// `CI=true`, where a missing cluster fails them.
enum SlurmCluster {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let releaseDirectory = packageRoot.appendingPathComponent(".build/release")
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static let isReachable: Bool = {
        guard
            let process = try? ChildProcess(
                ["/usr/bin/env", "scontrol", "ping"], environment: ProcessInfo.processInfo.environment,
                standardOutput: "/dev/null", standardError: "/dev/null")
        else { return false }
        process.waitUntilExit()
        let ok = process.terminationStatus == 0
        if !ok && !inCI {
            FileHandle.standardError.write(
                Data(
                    "\n*** SLURM TESTS SKIPPED: no Slurm is reachable (`scontrol ping` failed). Run scripts/slurm/start (root, Debian) or scripts/test. ***\n\n"
                        .utf8))
        }
        return ok
    }()

    /// Enabled when Slurm is reachable, and always under CI (where a missing cluster must fail).
    static var enabled: Bool { inCI || isReachable }

    static func binary(_ name: String) -> String { releaseDirectory.appendingPathComponent(name).path }

    /// Fails the test with what is missing; returns false when the test cannot go on.
    static func require(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard isReachable else {
            Issue.record(
                "CI=true but no Slurm is reachable: scripts/slurm/start must run before the tests (scripts/test does it)",
                sourceLocation: sourceLocation)
            return false
        }
        for name in ["squares", "pi", "mp", "mp-fixture"]
        where !FileManager.default.isExecutableFile(atPath: binary(name)) {
            Issue.record(
                "\(binary(name)) is missing: build with `swift build -c release --static-swift-stdlib` (scripts/test does it)",
                sourceLocation: sourceLocation)
            return false
        }
        return true
    }

    typealias Output = FixtureProcess.Outcome

    /// Runs a Slurm client command (srun, sbatch, scancel) with a deadline.
    static func run(
        _ command: String, _ arguments: [String], timeout: Duration = .seconds(120), waitingFor what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Output {
        // Outside any job: no SLURM_ variable of the test's own environment leaks in.
        try await FixtureProcess.runProcess(
            ["/usr/bin/env", command] + arguments, removingPrefix: "SLURM_", directory: packageRoot,
            timeout: timeout, waitingFor: what, sourceLocation: sourceLocation)
    }

    /// Submits a job script with `sbatch --wait` and returns the job's output file.
    static func batch(
        _ script: String, options: [String], timeout: Duration = .seconds(180), waitingFor what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (Output, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mp-job-\(UUID().uuidString).out")
            .path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try await run(
            "sbatch", ["--parsable", "--wait", "--output=\(output)"] + options + [script], timeout: timeout,
            waitingFor: what, sourceLocation: sourceLocation)
        return (result, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// Writes a job script to a temporary file.
    static func script(_ body: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mp-job-\(UUID().uuidString).slurm")
            .path
        try ("#!/bin/bash\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite("Under real Slurm", .enabled(if: SlurmCluster.enabled), .timeLimit(.minutes(5)))
struct SlurmTests {
    @Test("the squares job script, submitted as a user would, prints the seed's list")
    func squaresJob() async throws {
        guard SlurmCluster.require() else { return }
        let (result, output) = try await SlurmCluster.batch(
            "Examples/squares/job.slurm", options: ["--cpus-per-task=2", "--mem-per-cpu=1G"],
            waitingFor: "the squares job")
        #expect(result.status == 0, "\(result.stderr)\(output)")
        #expect(output == "[1, 4, 9, 16, 25, 36, 49, 64]\n")
    }

    @Test("the pi job script prints the known hit count, with as many workers as CPUs given")
    func piJob() async throws {
        guard SlurmCluster.require() else { return }
        let (result, output) = try await SlurmCluster.batch(
            "Examples/pi/job.slurm", options: ["--cpus-per-task=2", "--mem-per-cpu=1G"], waitingFor: "the pi job")
        #expect(result.status == 0, "\(result.stderr)\(output)")
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        #expect(object?["hits"] as? Int == 50_268_706, "\(output)")
        #expect(object?["workers"] as? Int == 2)
        let nodes = object?["nodes"] as? [String] ?? []
        #expect(nodes.count == 1 && nodes[0].hasPrefix("node"), "the node name comes from SLURMD_NODENAME: \(nodes)")
    }

    @Test("inside srun -c N the default pool has N workers, each bound to the step's CPUs", arguments: [1, 2])
    func stepCPUs(cpus: Int) async throws {
        guard SlurmCluster.require() else { return }
        let result = try await SlurmCluster.run(
            "srun", ["-c", "\(cpus)", "--mem-per-cpu=512M", SlurmCluster.binary("mp-fixture"), "affinity"],
            waitingFor: "srun -c \(cpus)")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let line = result.lines.first ?? ""
        #expect(line.contains(" pool \(cpus) workers "), "\(line)")
        #expect(line.hasPrefix("node node"), "\(line)")
        // node <name> mask <list> pool <count> workers <list>...: each worker may run on the step's CPUs only.
        let words = line.split(separator: " ").map(String.init)
        let mask = words.firstIndex(of: "mask").map { words[$0 + 1] }
        let workers = words.firstIndex(of: "workers").map { Array(words[($0 + 1)...]) } ?? []
        #expect(workers.count == cpus && workers.allSatisfy { $0 == mask }, "\(line)")
    }

    @Test("SLURM_CPUS_PER_TASK above the step's mask (srun -n2 inside sbatch -c2): sized from the mask, warned once")
    func cpusPerTaskAboveMask() async throws {
        guard SlurmCluster.require() else { return }
        let script = try SlurmCluster.script("srun -n2 \(SlurmCluster.binary("mp-fixture")) cpus 1")
        defer { try? FileManager.default.removeItem(atPath: script) }
        let (result, output) = try await SlurmCluster.batch(
            script, options: ["--cpus-per-task=2", "--mem-per-cpu=512M"], waitingFor: "srun -n2 in sbatch -c2")
        #expect(result.status == 0, "\(output)")
        let lines = output.split(separator: "\n")
        #expect(lines.filter { $0 == "count 1 source affinity mask" }.count == 2, "\(output)")
        #expect(lines.filter { $0 == "pool 1" }.count == 2)
        let warnings = lines.filter {
            $0.hasPrefix(
                "swift-multiprocessing: warning: SLURM_CPUS_PER_TASK=2 but this job step may only run on 1 CPU")
        }
        #expect(warnings.count == 2, "once per task process: \(output)")
    }

    @Test("what a function prints lands in the job's output, whole lines, even from a worker killed after printing")
    func workerOutput() async throws {
        guard SlurmCluster.require() else { return }
        let script = try SlurmCluster.script("srun \(SlurmCluster.binary("mp-fixture")) print-then-die")
        defer { try? FileManager.default.removeItem(atPath: script) }
        let (_, output) = try await SlurmCluster.batch(
            script, options: ["--cpus-per-task=2", "--mem-per-cpu=512M"], waitingFor: "a job whose workers print")
        let lines = Set(output.split(separator: "\n").map(String.init))
        #expect((0..<100).allSatisfy { lines.contains("line \($0) from a worker") }, "\(output)")
        #expect(lines.contains("last words of item 3"))
        #expect(lines.contains { $0.hasPrefix("failures 1: code=worker died index=3 ") })
    }

    /// Starts `long-map` as a job, waits until it has results, then lets `stop` end it.
    func interruptedJob(options: [String], stop: (String) async throws -> Void) async throws -> (String, [Substring]) {
        let results = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mp-job-results-\(UUID().uuidString).jsonl"
        ).path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mp-job-\(UUID().uuidString).out")
            .path
        defer {
            try? FileManager.default.removeItem(atPath: results)
            try? FileManager.default.removeItem(atPath: output)
        }
        let script = try SlurmCluster.script(
            "export FIXTURE_RESULTS=\(results) FIXTURE_ITEM_MS=1000\nsrun \(SlurmCluster.binary("mp-fixture")) long-map"
        )
        defer { try? FileManager.default.removeItem(atPath: script) }
        let submitted = try await SlurmCluster.run(
            "sbatch",
            ["--parsable", "--output=\(output)", "--cpus-per-task=2", "--mem-per-cpu=512M"] + options + [script],
            waitingFor: "sbatch")
        let job = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!job.isEmpty, "\(submitted.stderr)")
        try await stop(job)
        // Wait for the job to end (Slurm kills what is left KillWait after SIGTERM). Only a
        // final state counts: scontrol can fail for a moment while slurmctld is busy.
        let finalStates = ["COMPLETED", "CANCELLED", "TIMEOUT", "FAILED", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY"]
        let deadline = ContinuousClock.now + .seconds(150)
        var lastState = ""
        while ContinuousClock.now < deadline {
            let info = try await SlurmCluster.run("scontrol", ["show", "job", job], waitingFor: "scontrol")
            if let field = info.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
                .first(where: { $0.hasPrefix("JobState=") })
            {
                lastState = String(field.dropFirst("JobState=".count))
                if finalStates.contains(lastState) { break }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(finalStates.contains(lastState), "job \(job) did not end in time (last state \(lastState))")
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let saved = ((try? String(contentsOfFile: results, encoding: .utf8)) ?? "").split(separator: "\n")
        return (text, saved)
    }

    func waitForOutput(_ job: String, containing text: String) async throws {
        // The job's output file is named by --output; find it through scontrol.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let info = try await SlurmCluster.run("scontrol", ["show", "job", job], waitingFor: "scontrol")
            if let path = info.stdout.split(separator: " ").first(where: { $0.hasPrefix("StdOut=") })?.dropFirst(7),
                let content = try? String(
                    contentsOfFile: String(path).trimmingCharacters(in: .whitespacesAndNewlines), encoding: .utf8),
                content.contains(text)
            {
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting for job \(job) to print \(text)")
    }

    @Test("scancel: the pool stops in order, says why, and the results already received are in the file")
    func scancel() async throws {
        guard SlurmCluster.require() else { return }
        let (output, saved) = try await interruptedJob(options: []) { job in
            try await waitForOutput(job, containing: "children ")
            try await Task.sleep(for: .seconds(3))  // a few items finish
            _ = try await SlurmCluster.run("scancel", [job], waitingFor: "scancel")
        }
        #expect(
            output.contains(
                "swift-multiprocessing: received SIGTERM (Slurm sends it at the job's time limit and on scancel): stopping the pool"
            ), "\(output)")
        #expect(output.contains("code=interrupted index=nil"))
        #expect(!saved.isEmpty, "the results file holds the finished items")
        #expect(output.contains("swift-multiprocessing: wrote the \(saved.count) results received so far to "))
    }

    @Test("the time limit (--time=00:02:00 --signal=TERM@50): the pool stops in order and keeps its results")
    func timeLimit() async throws {
        guard SlurmCluster.require() else { return }
        // Slurm may send the signal up to 60 s early (its man page; seen at +4 s here with a
        // 1-minute limit, before any item had finished): 2 minutes leave it 10 s at least.
        let (output, saved) = try await interruptedJob(options: ["--time=00:02:00", "--signal=TERM@50"]) { _ in }
        #expect(output.contains("received SIGTERM"), "\(output)")
        #expect(output.contains("code=interrupted index=nil"))
        #expect(!saved.isEmpty)
        for line in saved.prefix(3) {
            #expect(line.hasPrefix("{\"call\":1,\"index\":"))
        }
    }

    @Test("the examples are built with --static-swift-stdlib: no Swift runtime needed on the nodes")
    func staticBinaries() async throws {
        guard SlurmCluster.require() else { return }
        for name in ["squares", "pi", "mp"] {
            let ldd = try await SlurmCluster.run("ldd", [SlurmCluster.binary(name)], waitingFor: "ldd")
            #expect(!ldd.stdout.contains("libswift"), "\(name) links the Swift runtime dynamically:\n\(ldd.stdout)")
        }
    }

    @Test("job scripts from mp slurm-script, on one node and on two, pass sbatch --test-only", arguments: [1, 2])
    func generatedScriptsAreValid(nodes: Int) async throws {
        guard SlurmCluster.require() else { return }
        let generated = try await SlurmCluster.run(
            SlurmCluster.binary("mp"),
            [
                "slurm-script", "--cpus", "2", "--mem-per-cpu", "1G", "--time", "0-00:05", "--job-name", "mp-test",
                "--nodes", "\(nodes)", ".build/release/pi", "--", "--json",
            ],
            waitingFor: "mp slurm-script")
        let script = try SlurmCluster.script(String(generated.stdout.drop { $0 != "\n" }.dropFirst()))
        defer { try? FileManager.default.removeItem(atPath: script) }
        let check = try await SlurmCluster.run("sbatch", ["--test-only", script], waitingFor: "sbatch --test-only")
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stderr.contains("to start at"), "\(check.stderr)")
    }
}
