import Foundation
import Testing

@testable import Multiprocessing

/// A multi-node pool whose "nodes" are this machine: a stand-in `srun` on the PATH starts
/// one worker host per node here, each with its own `SLURMD_NODENAME`. It runs the whole
/// multi-node side (``SlurmLauncher``: the listener, the hosts' handshakes, remote
/// workers on TCP channels, exit reports, closing the step) without Slurm.
@Suite("Nodes on this machine (a stand-in srun)", .timeLimit(.minutes(3)))
struct LocalNodesTests {
    /// A folder holding an executable `srun` that reads the secret from its stdin and runs
    /// the command once per node (`--nodes=N`), each copy with the secret on its stdin.
    /// With `MP_TEST_LOSE_NODE1_AFTER=S`, it kills node1's host (SIGKILL) after S seconds.
    static func standInSrun() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mp-srun-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let script = """
            #!/bin/sh
            n=1
            while [ $# -gt 0 ]; do
              case "$1" in
                --nodes=*) n="${1#--nodes=}"; shift ;;
                --*) shift ;;
                *) break ;;
              esac
            done
            read -r secret
            i=0
            while [ $i -lt $n ]; do
              printf '%s\\n' "$secret" | SLURMD_NODENAME="node$i" "$@" &
              if [ $i -eq 1 ] && [ -n "$MP_TEST_LOSE_NODE1_AFTER" ]; then
                host=$!
                (sleep "$MP_TEST_LOSE_NODE1_AFTER"; kill -9 $host) &
              fi
              i=$((i + 1))
            done
            wait
            """
        let path = folder.appendingPathComponent("srun")
        try script.write(to: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path.path)
        return folder
    }

    static func environment(_ folder: URL) -> [String: String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return ["PATH": folder.path + ":" + path, "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2"]
    }

    static let slurmVariables = [
        "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_NODES", "SLURM_PROCID", "MP_NODES", "MP_WORKERS",
        "SLURM_CPUS_PER_TASK",
    ]

    @Test("a map over two stand-in nodes: both hosts join, their workers answer every item, the pool closes")
    func mapOverTwoNodes() async throws {
        let folder = try Self.standInSrun()
        defer { try? FileManager.default.removeItem(at: folder) }
        let outcome = try await FixtureProcess.run(
            ["nodes-map", "60", "2", "0"], environment: Self.environment(folder), removing: Self.slurmVariables,
            timeout: .seconds(90), waitingFor: "a map over two stand-in nodes")
        let workers = outcome.line("workers=")
        #expect(workers.hasSuffix(" source=slurmNodes"), "\(outcome.stdout)\(outcome.stderr)")
        let count = Int(workers.dropFirst("workers=".count).prefix { $0.isNumber }) ?? 0
        #expect(count >= 2, "\(outcome.stdout)\(outcome.stderr)")
        let sum = (0..<60).map { $0 * $0 }.reduce(0, +)
        #expect(outcome.line("sum=") == "sum=\(sum) nodes=node0,node1", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("error:") == "", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
    }

    @Test("a node lost mid-map: its slots are retired, the chunks its workers ran are retried on the other node")
    func nodeLost() async throws {
        let folder = try Self.standInSrun()
        defer { try? FileManager.default.removeItem(at: folder) }
        var environment = Self.environment(folder)
        environment["MP_TEST_LOSE_NODE1_AFTER"] = "1"
        // 40 items of 40 ms per worker (each host starts one per CPU it may use): the map
        // takes about 1.6 s on any machine, and node1 is lost at 1 s, in the middle of it.
        let items = 2 * (Platform.affinityCPUCount() ?? Platform.onlineCPUCount()) * 40
        let outcome = try await FixtureProcess.run(
            ["nodes-map", "\(items)", "40", "1"], environment: environment, removing: Self.slurmVariables,
            timeout: .seconds(90), waitingFor: "a map that loses a stand-in node")
        let sum = (0..<items).map { $0 * $0 }.reduce(0, +)
        #expect(outcome.line("error:") == "", "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.line("sum=") == "sum=\(sum) nodes=node0,node1", "\(outcome.stdout)\(outcome.stderr)")
        // The report: the lost node's slots, and its running chunks retried (one item each: chunkSize 1).
        let lost = outcome.lines.filter { $0.hasSuffix(", lost with its node") }
        #expect(!lost.isEmpty, "\(outcome.stdout)\(outcome.stderr)")
        let totals = outcome.line("\(items) items in ")
        #expect(totals.contains(", 0 failed, ") && !totals.contains(", 0 retried, "), "\(outcome.stdout)")
        #expect(outcome.stderr.contains("lost the worker host on node node1"), "\(outcome.stderr)")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
    }
}
