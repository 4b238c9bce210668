import Foundation
import Testing

@testable import Multiprocessing

/// Processes on this machine, read from /proc: the emulated nodes share one PID space, so
/// a test sees every process of a job, on every node.
enum ProcessTable {
    struct Entry {
        let pid: Int32
        let command: String
        let environment: [String: String]
    }

    static func all() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { name -> Entry? in
            guard let pid = Int32(name),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"),
                stat[stat.index(close, offsetBy: 2)] != "Z",  // zombies (PID 1 here does not reap) are gone
                let environ = FileManager.default.contents(atPath: "/proc/\(name)/environ")
            else { return nil }
            let command =
                (try? String(contentsOfFile: "/proc/\(name)/comm", encoding: .utf8))?.trimmingCharacters(
                    in: .whitespacesAndNewlines) ?? ""
            var environment: [String: String] = [:]
            for entry in environ.split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                if let equals = text.firstIndex(of: "=") {
                    environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
                }
            }
            return Entry(pid: pid, command: command, environment: environment)
        }
    }

    /// The pool's processes of one job: the program (coordinator), srun, worker hosts and workers.
    static func poolProcesses(job: String) -> [Entry] {
        all().filter {
            $0.environment["SLURM_JOB_ID"] == job
                && ($0.command.hasPrefix("mp-fixture") || $0.command.hasPrefix("pi") || $0.command == "srun")
        }
    }

    /// The worker host of `job` on `node`.
    static func host(job: String, node: String) -> Entry? {
        all().first {
            $0.environment["SLURM_JOB_ID"] == job && $0.environment["SLURMD_NODENAME"] == node
                && $0.environment[WorkerHost.environmentVariable] != nil && $0.command.hasSuffix("-host")
        }
    }
}

/// One pool across both emulated nodes of the local Slurm: one program in the batch
/// script, one `srun` step of worker hosts. Serialized: each job takes every CPU of the
/// cluster.
@Suite("Across the nodes of a real Slurm", .serialized, .enabled(if: SlurmCluster.enabled), .timeLimit(.minutes(5)))
struct MultiNodeTests {
    /// Submits `nodes-map` on two nodes without waiting; returns the job id and output path.
    func submitMap(items: Int, milliseconds: Int, retries: Int, options: [String] = ["--time=00:02:00"]) async throws
        -> (job: String, output: String)
    {
        try await submit("nodes-map \(items) \(milliseconds) \(retries)", options: options)
    }

    /// Submits an `mp-fixture` scenario on two nodes without waiting; returns the job id and output path.
    func submit(_ scenario: String, options: [String] = ["--time=00:02:00"]) async throws -> (
        job: String, output: String
    ) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mp-job-\(UUID().uuidString).out")
            .path
        let script = try SlurmCluster.script(
            "\(SlurmCluster.binary("mp-fixture")) \(scenario)\necho \"job-status=$?\"")
        defer { try? FileManager.default.removeItem(atPath: script) }
        let submitted = try await SlurmCluster.run(
            "sbatch",
            [
                "--parsable", "--output=\(output)", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=2",
                "--mem-per-cpu=256M",
            ] + options + [script], waitingFor: "sbatch")
        let job = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!job.isEmpty, "\(submitted.stderr)")
        return (job, output)
    }

    /// Waits until `condition` holds, polling; records a failure naming `what` after `timeout`.
    func waitUntil(
        _ what: String, timeout: Duration = .seconds(90), sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
        return false
    }

    func contents(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test("sbatch of the multi-node pi job: the one-node hit count, both nodes named, the workers of both counted")
    func piAcrossNodes() async throws {
        guard SlurmCluster.require() else { return }
        let (result, output) = try await SlurmCluster.batch(
            "Examples/pi/job-nodes.slurm", options: [], waitingFor: "the multi-node pi job")
        #expect(result.status == 0, "\(result.stderr)\(output)")
        let json = output.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
        let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["hits"] as? Int == 50_268_706, "\(output)")
        #expect(object?["nodes"] as? [String] == ["node1", "node2"], "\(output)")
        #expect(object?["workers"] as? Int == 4, "two workers on each node: \(output)")
        #expect(output.contains("worker host joined"), "the log says which hosts joined: \(output)")
    }

    @Test("the program under srun with two tasks on two nodes: told once how to fix it, a correct result per node")
    func insideStepOfTwoTasks() async throws {
        guard SlurmCluster.require() else { return }
        let result = try await SlurmCluster.run(
            "srun",
            [
                "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=2", "--mem-per-cpu=256M",
                SlurmCluster.binary("pi"), "--json", "--chunks", "16", "--samples", "100000",
            ], waitingFor: "pi under srun -N2 -n2")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.lines.filter { $0.hasPrefix("{") }
        #expect(lines.count == 2, "\(result.stdout)")
        let local = try await SlurmCluster.run(
            SlurmCluster.binary("pi"), ["--json", "--chunks", "16", "--samples", "100000", "--workers", "1"],
            waitingFor: "pi on this machine")
        let expected = (try? JSONSerialization.jsonObject(with: Data(local.stdout.utf8)) as? [String: Any])?["hits"]
        var nodes: [String] = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["hits"] as? Int == expected as? Int, "\(line)")
            #expect(object?["workers"] as? Int == 2, "\(line)")
            nodes += object?["nodes"] as? [String] ?? []
        }
        #expect(nodes.sorted() == ["node1", "node2"], "each task used its own node: \(nodes)")
        let advice = result.stderr.components(
            separatedBy: "this program runs inside a Slurm job step of 2 tasks on 2 nodes")
        #expect(advice.count == 2, "said exactly once: \(result.stderr)")
        #expect(result.stderr.contains("run the program once, directly in the batch script, without srun"))
    }

    @Test("a client with the wrong secret and one sending garbage: refused and logged, the pool unaffected")
    func intruders() async throws {
        guard SlurmCluster.require() else { return }
        let (job, output) = try await submitMap(items: 120, milliseconds: 50, retries: 0)
        defer { try? FileManager.default.removeItem(atPath: output) }
        // The port, as srun passes it to the hosts (it is not a secret).
        var port: UInt16 = 0
        guard
            try await waitUntil(
                "srun of job \(job)",
                {
                    let srun = ProcessTable.all().first {
                        $0.command == "srun" && $0.environment["SLURM_JOB_ID"] == job
                            && $0.environment[WorkerHost.environmentVariable] != nil
                    }
                    port =
                        srun.flatMap {
                            WorkerHost.Settings(environmentValue: $0.environment[WorkerHost.environmentVariable]!)
                        }?.port ?? 0
                    return port != 0 && contents(output).contains("workers=4")
                })
        else { return }

        // 1. The protocol, with a secret of its own.
        let impostor = try Platform.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000)
        try Platform.setIOTimeout(impostor, milliseconds: 10_000)
        var channel = BlockingChannel(descriptor: impostor, maximumPayload: Authentication.maximumPayload)
        let refused = #expect(throws: MultiprocessingError.self) {
            try Authentication.authenticate(&channel, secret: .random(), role: .host, workerID: 0)
        }
        #expect(refused?.code == .authenticationFailed)
        Platform.close(impostor)

        // 2. Garbage: the connection is closed.
        let garbage = try Platform.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000)
        try Platform.setIOTimeout(garbage, milliseconds: 3_000)
        Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { _ = try? Platform.writeAll(garbage, $0) }
        var byte = [UInt8](repeating: 0, count: 4096)
        var total = 0
        var closed = false
        while true {
            // End of file (or a reset) is the coordinator closing; a timeout is a failure.
            let n: Int
            do {
                n = try byte.withUnsafeMutableBytes { try Platform.read(garbage, into: $0.baseAddress!, count: 4096) }
            } catch let error as MultiprocessingError {
                closed = Platform.isPeerGone(error)
                break
            }
            if n == 0 {
                closed = true
                break
            }
            total += n
        }
        #expect(closed, "the coordinator closed the garbage connection")
        #expect(total == 8 + ClusterMessage.nonceSize, "the coordinator sent only its challenge before closing")
        Platform.close(garbage)

        guard try await waitUntil("job \(job) to finish", { contents(output).contains("job-status=") }) else { return }
        let text = contents(output)
        #expect(text.contains("sum=\((0..<120).map { $0 * $0 }.reduce(0, +)) nodes=node1,node2"), "\(text)")
        #expect(text.contains("job-status=0"))
        #expect(text.contains("0 failed, 0 retried, 0 respawns"), "\(text)")
        let refusals = text.split(separator: "\n").filter { $0.contains("refused a connection from 127.0.0.1:") }
        #expect(refusals.count == 2, "\(text)")
        #expect(refusals.contains { $0.contains("the client's proof of the pool's secret is wrong") })
        #expect(refusals.contains { $0.contains("not a swift-multiprocessing frame") })
        #expect(refusals.allSatisfy { $0.contains("nothing runs for it") })
    }

    @Test(
        "the worker host of one node killed mid-map: retried on the other node, or a failure naming the node",
        arguments: [1, 0])
    func nodeLost(retries: Int) async throws {
        guard SlurmCluster.require() else { return }
        let (job, output) = try await submitMap(items: 200, milliseconds: 100, retries: retries)
        defer { try? FileManager.default.removeItem(atPath: output) }
        var victim: ProcessTable.Entry?
        guard
            try await waitUntil(
                "the worker host on node2",
                {
                    victim = ProcessTable.host(job: job, node: "node2")
                    return victim != nil && contents(output).contains("workers=4")
                })
        else { return }
        try await Task.sleep(for: .seconds(1))  // some items in flight on node2
        kill(victim!.pid, SIGKILL)
        guard try await waitUntil("job \(job) to finish", { contents(output).contains("job-status=") }) else { return }
        let text = contents(output)
        #expect(text.contains("lost the worker host on node node2"), "\(text)")
        if retries > 0 {
            #expect(text.contains("sum=\((0..<200).map { $0 * $0 }.reduce(0, +)) nodes=node1,node2"), "\(text)")
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("error: ") }, "\(text)")
        } else {
            let error = text.split(separator: "\n").first { $0.hasPrefix("error: ") }.map(String.init) ?? ""
            #expect(error.hasPrefix("error: code=worker died"), "\(text)")
            #expect(
                error.contains("on node2) was lost with node node2 (the connection to its worker host ended"),
                "\(error)")
            #expect(error.contains("[lost node2]"))
        }
        // Nothing of the pool is left on either node once the job has ended.
        _ = try await waitUntil("every process of job \(job) to exit", timeout: .seconds(30)) {
            ProcessTable.poolProcesses(job: job).isEmpty
        }
    }

    @Test(
        "the time limit's SIGTERM (--signal=TERM@50, sent only to the step's tasks) reaches the program through its hosts"
    )
    func timeLimitAcrossNodes() async throws {
        guard SlurmCluster.require() else { return }
        // Slurm may send the signal up to 60 s early: the 2-minute limit leaves the pool 10 s
        // to start at least; 4000 items of 100 ms on 4 workers outlast the signal.
        let (job, output) = try await submitMap(
            items: 4000, milliseconds: 100, retries: 0, options: ["--time=00:02:00", "--signal=TERM@50"])
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard
            try await waitUntil(
                "job \(job) to stop", timeout: .seconds(150), { contents(output).contains("job-status=") })
        else { return }
        let text = contents(output)
        #expect(
            text.contains(
                "received SIGTERM (Slurm sends it at the job's time limit and on scancel, or someone sent it with kill): stopping the pool; results already received are kept"
            ), "\(text)")
        #expect(text.contains("swift-multiprocessing: the worker host on node"), "passed on by a host: \(text)")
        #expect(text.contains("error: code=interrupted"), "\(text)")
        _ = try await waitUntil("every process of job \(job) to exit", timeout: .seconds(30)) {
            ProcessTable.poolProcesses(job: job).isEmpty
        }
    }

    @Test("a step that cannot start (more CPUs per node than the nodes have): a clear error quoting srun, no hang")
    func stepCannotStart() async throws {
        guard SlurmCluster.require() else { return }
        // The pool asks srun for the fewest CPUs any node has, read from this variable;
        // 8 is more than the emulated nodes have, so Slurm refuses the step.
        let script = try SlurmCluster.script(
            "export SLURM_JOB_CPUS_PER_NODE='8(x2)'\n\(SlurmCluster.binary("pi")) --json\necho \"job-status=$?\"")
        defer { try? FileManager.default.removeItem(atPath: script) }
        let (result, output) = try await SlurmCluster.batch(
            script, options: ["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=2", "--mem-per-cpu=256M"],
            timeout: .seconds(120), waitingFor: "a multi-node job whose step cannot start")
        #expect(result.status == 0, "\(result.stderr)")
        let line = output.split(separator: "\n").first { $0.hasPrefix("pi: ") }.map(String.init) ?? ""
        #expect(
            line.hasPrefix(
                "pi: the Slurm step that starts the worker hosts on the other nodes ended (srun exited with status 1) before the pool was ready. Slurm said: srun: error: "
            ), "\(output)")
        #expect(line.contains("Command: /usr/bin/srun --nodes=2 --ntasks=2 --ntasks-per-node=1"), "\(line)")
        #expect(output.contains("job-status=1"))
    }

    @Test("a call cancelled while all four remote workers run it: the hosts stop them together, the pool goes on")
    func cancelAcrossNodes() async throws {
        guard SlurmCluster.require() else { return }
        let (job, output) = try await submit("nodes-cancel")
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard try await waitUntil("job \(job) to finish", { contents(output).contains("job-status=") }) else { return }
        let text = contents(output)
        #expect(text.contains("workers=4"), "\(text)")
        #expect(text.contains("cancelled: code=cancelled"), "\(text)")
        #expect(
            text.contains("after sum=\((0..<40).map { $0 * $0 }.reduce(0, +)) nodes=node1,node2 workers=4"), "\(text)")
        #expect(!text.contains("lost the worker host"), "no host died: \(text)")
        #expect(text.contains("job-status=0"))
    }

    @Test("both nodes lost: the running call fails, and the next call fails at once instead of waiting forever")
    func allNodesLost() async throws {
        guard SlurmCluster.require() else { return }
        let (job, output) = try await submit("nodes-after-loss")
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard try await waitUntil("the pool of job \(job)", { contents(output).contains("workers=4") }) else { return }
        try await Task.sleep(for: .seconds(1))
        for node in ["node1", "node2"] {
            let host = try #require(ProcessTable.host(job: job, node: node), "the worker host on \(node)")
            kill(host.pid, SIGKILL)
        }
        guard try await waitUntil("job \(job) to finish", { contents(output).contains("job-status=") }) else { return }
        let text = contents(output)
        #expect(text.contains("first: code=worker died") || text.contains("first: code=nodes unavailable"), "\(text)")
        #expect(
            text.contains(
                "second: code=nodes unavailable index=nil type=nil remote=nil message=every node of the pool was lost"),
            "\(text)")
        let second = text.split(separator: "\n").first { $0.hasPrefix("second seconds=") }
        let seconds = second.flatMap { Double($0.dropFirst("second seconds=".count)) }
        #expect(seconds.map { $0 < 1 } == true, "the call after every node was lost must fail at once: \(text)")
        #expect(text.contains("job-status=0"))
    }

    @Test("the coordinator killed: every remote worker and host exits within a few seconds")
    func coordinatorKilled() async throws {
        guard SlurmCluster.require() else { return }
        let (job, output) = try await submitMap(items: 400, milliseconds: 100, retries: 0)
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard try await waitUntil("the pool of job \(job)", { contents(output).contains("workers=4") }) else { return }
        let processes = ProcessTable.poolProcesses(job: job)
        let workers = processes.filter { $0.environment[WorkerMode.environmentVariable] != nil }
        #expect(workers.count == 4, "\(processes.map(\.command))")
        let coordinator = processes.first {
            $0.environment[WorkerMode.environmentVariable] == nil
                && $0.environment[WorkerHost.environmentVariable] == nil
                && $0.command != "srun"
        }
        let pid = try #require(coordinator?.pid, "\(processes.map(\.command))")
        kill(pid, SIGKILL)
        let started = ContinuousClock.now
        let gone = try await waitUntil("the hosts and workers of job \(job) to exit", timeout: .seconds(10)) {
            ProcessTable.poolProcesses(job: job).isEmpty
        }
        #expect(gone, "left: \(ProcessTable.poolProcesses(job: job).map(\.command))")
        #expect(ContinuousClock.now - started < .seconds(5))
    }
}
