import Foundation
import Testing

/// The README's examples, run as a user would run them.
@Suite("Examples", .timeLimit(.minutes(2)))
struct ExampleTests {
    /// Runs a built product (or an absolute path) with a one-minute deadline.
    func run(_ product: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (
        Int32, String, String
    ) {
        let path = product.hasPrefix("/") ? product : FixtureProcess.buildDirectory.appendingPathComponent(product).path
        let outcome = try await FixtureProcess.runProcess(
            [path] + arguments, environment: environment, waitingFor: "\(product) \(arguments.joined(separator: " "))")
        return (outcome.status, outcome.stdout, outcome.stderr)
    }

    @Test("squares prints exactly the seed's list")
    func squares() async throws {
        let (status, out, err) = try await run("squares", [])
        #expect(status == 0, "\(err)")
        #expect(out == "[1, 4, 9, 16, 25, 36, 49, 64]\n")
    }

    @Test("pi --json gives the known hit counts", arguments: [(100_000, 5_025_046), (1_000_000, 50_268_706)])
    func piJSON(samples: Int, hits: Int) async throws {
        let (status, out, err) = try await run("pi", ["--chunks", "64", "--samples", "\(samples)", "--json"])
        #expect(status == 0, "\(err)")
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(object?["hits"] as? Int == hits)
        #expect(object?["samples"] as? Int == 64 * samples)
        #expect(object?["workers"] as? Int == ProcessInfo.processInfo.activeProcessorCount)
        #expect((object?["nodes"] as? [String])?.count == 1)
        #expect(object?["seconds"] is Double)
        #expect(abs((object?["pi"] as? Double ?? 0) - 3.1415) < 0.01)
        #expect(out.split(separator: "\n").count == 1, "one line of JSON and nothing else on stdout")
    }

    @Test("pi --workers starts that many workers, even above the CPU count; the plain output is one sentence")
    func piWorkers() async throws {
        let (status, out, _) = try await run("pi", ["--chunks", "16", "--samples", "1000", "--workers", "5", "--json"])
        #expect(status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(object?["workers"] as? Int == 5)
        let (_, sentence, _) = try await run("pi", ["--chunks", "16", "--samples", "1000", "--workers", "3"])
        #expect(sentence.hasPrefix("pi ≈ "))
        #expect(sentence.contains("of 16000 samples, 3 workers on "))
    }

    @Test("pi --progress in a real terminal (a pty from script(1)) draws a live bar, then the report")
    func progressBarInTerminal() async throws {
        let pi = FixtureProcess.buildDirectory.appendingPathComponent("pi").path
        let (status, out, err) = try await run(
            "/usr/bin/script", ["-qfec", "\(pi) --chunks 32 --samples 5000000 --progress", "/dev/null"])
        #expect(status == 0, "\(err)")
        let redraws = out.components(separatedBy: "\r[").count - 1
        #expect(redraws >= 2, "the bar is redrawn in place while the work runs: \(out.debugDescription)")
        #expect(out.contains("\u{1B}[K"))
        #expect(out.contains("] mapReduce 32/32 (100%) "))
        #expect(out.contains("32 items in "))
        #expect(out.contains("  worker 0 on "))
    }

    @Test("pi --help and bad flags")
    func piHelp() async throws {
        let (status, out, _) = try await run("pi", ["--help"])
        #expect(status == 0)
        #expect(out.contains("--chunks <chunks>"))
        #expect(out.contains("--samples <samples>"))
        let (badStatus, _, badErr) = try await run("pi", ["--chunks", "0"])
        #expect(badStatus != 0)
        #expect(badErr.contains("--chunks must be at least 1"))
    }

    @Test("mp cpus explains the default worker count")
    func mpCPUs() async throws {
        let (status, out, _) = try await run("mp", ["cpus"], environment: ["SLURM_CPUS_PER_TASK": "1"])
        #expect(status == 0)
        #expect(out.hasPrefix("workers: 1 (decided by: SLURM_CPUS_PER_TASK)\nwhy: SLURM_CPUS_PER_TASK=1 is below the "))
        #expect(out.contains("\nSLURM_CPUS_PER_TASK: 1\n"))
        let (_, json, _) = try await run(
            "mp", ["cpus", "--json"], environment: ["SLURM_CPUS_ON_NODE": "abc", "MP_WORKERS": "3"])
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["workers"] as? Int == 3)
        #expect(object?["source"] as? String == "MP_WORKERS")
        #expect(object?["reason"] as? String == "MP_WORKERS=3 overrides the CPU rules")
        #expect(json.split(separator: "\n").count == 1, "stdout holds only the JSON object")
        let (_, bad, _) = try await run("mp", ["cpus", "--json"], environment: ["SLURM_CPUS_PER_TASK": "-2"])
        let ignored =
            (try JSONSerialization.jsonObject(with: Data(bad.utf8)) as? [String: Any])?["ignored"]
            as? [[String: String]]
        #expect(ignored?.first?["variable"] == "SLURM_CPUS_PER_TASK")
        #expect(ignored?.first?["value"] == "-2")
        #expect(ignored?.first?["reason"] == "it is not positive")
    }

    @Test("mp slurm-script writes the seed's form and refuses bad values with a message")
    func slurmScript() async throws {
        let (status, out, _) = try await run(
            "mp",
            [
                "slurm-script", "--cpus", "2", "--mem-per-cpu", "1G", "--time", "1-02:30", ".build/release/pi", "--",
                "--json",
            ])
        #expect(status == 0)
        #expect(out.contains("#SBATCH --cpus-per-task=2\n#SBATCH --mem-per-cpu=1G\n#SBATCH --time=1-02:30\n"))
        #expect(out.contains("swift build -c release --static-swift-stdlib --product pi"))
        #expect(out.hasSuffix("srun --cpus-per-task=2 .build/release/pi --json\n"))
        let (nodesStatus, nodesOut, _) = try await run(
            "mp", ["slurm-script", "--nodes", "3", "--cpus", "8", ".build/release/pi", "--", "--json"])
        #expect(nodesStatus == 0)
        #expect(
            nodesOut.contains(
                "#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=8\n"), "\(nodesOut)")
        #expect(nodesOut.contains("same path on every node"))
        #expect(nodesOut.hasSuffix("\n.build/release/pi --json\n"), "no srun in front: \(nodesOut)")
        #expect(!nodesOut.contains("srun --"))
        for (option, value, message) in [
            ("--cpus", "0", "--cpus must be at least 1 (it becomes --cpus-per-task); 0 was given"),
            (
                "--time", "1:2:3:4",
                "--time '1:2:3:4' is not a time Slurm accepts: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
            ),
            ("--mem-per-cpu", "G", "--mem-per-cpu 'G' is not a size Slurm accepts"),
            ("--nodes", "0", "--nodes must be at least 1; 0 was given"),
        ] {
            let (badStatus, _, err) = try await run("mp", ["slurm-script", option, value, "x"])
            #expect(badStatus != 0)
            #expect(err.contains(message), "\(err)")
        }
    }
}
