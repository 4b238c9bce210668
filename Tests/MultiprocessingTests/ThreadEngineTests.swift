import Foundation
import Testing

@testable import Multiprocessing

/// The engines the pool-call tests run on: one test body, two engines (as CPython runs its
/// executor tests over every start method). A fixture gets its engine from `MP_ENGINE`.
enum Engine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case processes, threads

    /// The environment that selects this engine in a fixture.
    var environment: [String: String] { ["MP_ENGINE": rawValue] }
    var testDescription: String { rawValue }

    /// The worker processes a pool of `workers` starts with this engine.
    func children(_ workers: Int) -> Int { self == .threads ? 0 : workers }
}

/// The threads engine (`MP_ENGINE=threads`, `ProcessPool.Options.engine`): where items run,
/// what is never encoded, what threads refuse. The calls themselves are tested on both
/// engines by the suites of the process pool (their tests take an ``Engine``).
@Suite("Threads engine", .timeLimit(.minutes(3)))
struct ThreadEngineTests {
    @Test(
        "MP_ENGINE=threads: items run on threads of this process, no child process, inputs neither encoded nor copied")
    func threadsRunInProcess() async throws {
        let outcome = try await FixtureProcess.run(
            ["engine-where", "3"], environment: Engine.threads.environment, waitingFor: "a map on threads")
        #expect(outcome.line("engine ") == "engine threads workers 3 children 0", "\(outcome.transcript)")
        #expect(outcome.line("children after close") == "children after close 0")
        // Every item saw the very object passed in, none was encoded, the results are right.
        #expect(outcome.int("same", on: "objects ") == 200 && outcome.int("encodes", on: "objects ") == 0)
        #expect(outcome.ints("values", on: "objects ") == Array(0..<200), "\(outcome.transcript)")
        #expect(
            outcome.list("pids", on: "ran ") == [outcome.value("own", on: "ran ") ?? "?"], "\(outcome.line("ran "))")
        let threads = outcome.int("threads", on: "ran ") ?? 0
        #expect((1...3).contains(threads), "items ran on at most the pool's 3 threads: \(threads)")
        #expect((outcome.int("added", on: "threads ") ?? 0) >= 3, "\(outcome.line("threads "))")
    }

    @Test("the same program on processes: worker processes, inputs encoded; an engine in code wins over MP_ENGINE")
    func processesAndCodeWins() async throws {
        let plain = try await FixtureProcess.run(["engine-where", "2"], waitingFor: "a map on processes")
        #expect(plain.line("engine") == "engine processes workers 2 children 2", "\(plain.stderr)")
        #expect(plain.int("same", on: "objects ") == 0 && (plain.int("encodes", on: "objects ") ?? 0) > 0)
        #expect(plain.ints("values", on: "objects ") == Array(0..<200), "\(plain.transcript)")
        let pids = plain.list("pids", on: "ran ") ?? []
        #expect(pids.count == 2 && !pids.contains(plain.value("own", on: "ran ") ?? "?"), "\(plain.line("ran "))")
        #expect(plain.int("threads", on: "ran ") == 2)
        let inCode = try await FixtureProcess.run(
            ["engine-where", "2", "1"], environment: Engine.threads.environment, waitingFor: "engine set in code")
        #expect(inCode.line("engine") == "engine processes workers 2 children 2", "\(inCode.stderr)")
    }

    @Test("a bad MP_ENGINE is named in a warning and ignored")
    func badEnvironmentValue() async throws {
        let outcome = try await FixtureProcess.run(
            ["engine-where", "2"], environment: ["MP_ENGINE": "fibers"], waitingFor: "a bad MP_ENGINE")
        #expect(outcome.line("engine") == "engine processes workers 2 children 2")
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: warning: MP_ENGINE=fibers names no engine (use processes or threads); it is ignored"
            ), "\(outcome.stderr)")
    }

    @Test("the engine is resolved from the options first, then MP_ENGINE, else processes")
    func resolution() throws {
        var options = ProcessPool.Options()
        #expect(try ProcessPool.Engine.resolve(options, environment: nil) == .processes)
        #expect(try ProcessPool.Engine.resolve(options, environment: "threads") == .threads)
        #expect(try ProcessPool.Engine.resolve(options, environment: "Processes") == .processes)
        options.engine = .processes
        #expect(try ProcessPool.Engine.resolve(options, environment: "threads") == .processes)
        options.engine = .threads
        #expect(try ProcessPool.Engine.resolve(options, environment: "processes") == .threads)
        #expect(ProcessPool.Engine.threads.description == "threads")
    }

    @Test("itemTimeout is refused on threads (a thread cannot be stopped), with the fix")
    func timeoutRefused() async throws {
        let outcome = try await FixtureProcess.run(
            ["engine-timeout"], environment: Engine.threads.environment, waitingFor: "itemTimeout on threads")
        #expect(
            outcome.line("code=").hasPrefix(
                "code=invalid argument index=nil type=nil remote=nil message=itemTimeout (1.0 seconds) cannot be used with the threads engine (MP_ENGINE=threads): a thread cannot be stopped."
            ), "\(outcome.stdout)\(outcome.stderr)")
        let processes = try await FixtureProcess.run(["engine-timeout"], waitingFor: "itemTimeout on processes")
        #expect(processes.lines == ["engine processes started"], "\(processes.stderr)")
    }

    @Test("a thread that holds its work past stallReportAfter is named in the report, with what threads cannot do")
    func stalledThreadIsNamed() async throws {
        let outcome = try await FixtureProcess.run(
            ["engine-stall"], environment: Engine.threads.environment, waitingFor: "a stalled thread")
        let stalled = outcome.line("stalled: ")
        #expect(stalled.hasPrefix("stalled: worker "), "\(outcome.stdout)\(outcome.stderr)")
        #expect(stalled.contains(" (a thread) has held items 0..<1 for "))
        #expect(
            stalled.hasSuffix(
                "; it may be stuck (a thread cannot be stopped: the processes engine with ProcessPool.Options.itemTimeout can stop such items)"
            ))
        #expect(outcome.line("map") == "map [7]")
    }

    @Test("a timeline asked for on threads is not written, and a warning says so")
    func timelineOnThreads() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mp-timeline-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var environment = Engine.threads.environment
        environment["MP_TIMELINE"] = path
        let outcome = try await FixtureProcess.run(
            ["engine-where", "2"], environment: environment, waitingFor: "a timeline on threads")
        #expect(outcome.line("engine") == "engine threads workers 2 children 0", "\(outcome.stderr)")
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: warning: the timeline \(path) is not written with the threads engine (it traces worker processes); use the processes engine for one"
            ), "\(outcome.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("the initializer runs once on threads, before the pool starts; its failure is initializerFailed")
    func initializerOnce() async throws {
        let outcome = try await FixtureProcess.run(
            ["engine-initializer", "0"], environment: Engine.threads.environment, waitingFor: "an initializer")
        #expect(outcome.lines == ["engine threads runs 1", "map [1, 4, 9]"], "\(outcome.stderr)")
        let failing = try await FixtureProcess.run(
            ["engine-initializer", "1"], environment: Engine.threads.environment, waitingFor: "a failing initializer")
        #expect(
            failing.line("code=").hasPrefix(
                "code=initializer failed index=nil type=mp_fixture.CountingInitializer.Refused remote=refused on purpose message=the worker initializer mp_fixture.CountingInitializer threw"
            ), "\(failing.stdout)\(failing.stderr)")
        #expect(failing.line("runs") == "runs 1")
    }

    @Test(
        "stopping a stream ends the call at once and starts none of its items after; the pool goes on",
        arguments: Engine.allCases)
    func cancellationStopsNewWork(engine: Engine) async throws {
        let starts = FileManager.default.temporaryDirectory.appendingPathComponent("mp-starts-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: starts) }
        let outcome = try await FixtureProcess.run(
            ["cancel-starts"], environment: engine.environment.merging(["STARTS_FILE": starts]) { a, _ in a },
            waitingFor: "a stopped stream")
        #expect(outcome.lines.count == 3, "\(outcome.transcript)")
        #expect(outcome.line("consumer ").hasPrefix("consumer got 2 new starts after stop 0 "), "\(outcome.transcript)")
        #expect((outcome.int("starts-at-stop") ?? .max) <= 6, "\(outcome.transcript)")
        #expect(outcome.line("after ").hasPrefix("after [1, 4, 9] "), "\(outcome.transcript)")
        #expect((outcome.seconds("seconds", on: "after ") ?? .infinity) < 1, "the next call must run at once")
        #expect((outcome.seconds("since-stop", on: "after ") ?? 0) > 1, "the 1.5 s wait after the stop")
        #expect(outcome.line("cancelled: ") == "cancelled: code=cancelled")
    }

    @Test("MP_ENGINE=threads pi --json gives the same hits as processes, with no child process and its threads")
    func piOnThreads() async throws {
        let pi = FixtureProcess.buildDirectory.appendingPathComponent("pi").path
        let arguments = ["--chunks", "64", "--samples", "1000000", "--json", "--workers", "2"]
        let processes = try watch(pi, arguments, environment: Engine.processes.environment)
        let threads = try watch(pi, arguments, environment: Engine.threads.environment)
        func hits(_ json: String) -> Int? {
            (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["hits"] as? Int
        }
        // The known count (ExampleTests.piJSON) on both engines.
        #expect(hits(processes.stdout) == 50_268_706, "\(processes.stdout)")
        #expect(hits(threads.stdout) == 50_268_706, "\(threads.stdout)")
        #expect(processes.children == 2, "the process engine was seen with its workers")
        #expect(threads.children == 0, "no child process on threads")
        #expect(threads.threads >= 3, "the main thread and 2 worker threads at least: \(threads.threads)")
    }

    /// Runs a program to its end, noting the most child processes and threads it had at once
    /// (sampled every 2 ms: a pool's workers live as long as the pool).
    func watch(_ path: String, _ arguments: [String], environment: [String: String]) throws -> (
        stdout: String, children: Int, threads: Int
    ) {
        var env = ProcessInfo.processInfo.environment
        for name in FixtureProcess.sizingVariables { env[name] = nil }
        for (name, value) in environment { env[name] = value }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mp-watch-\(UUID())")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = try ChildProcess([path] + arguments, environment: env, standardOutput: output.path)
        let pid = process.processIdentifier
        var children = 0
        var threads = 0
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline {
            children = max(children, Self.children(of: pid))
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
            threads = max(threads, Int(line?.split(separator: "\t").last ?? "") ?? 0)
            usleep(2_000)
        }
        process.waitUntilExit()
        return ((try? String(contentsOf: output, encoding: .utf8)) ?? "", children, threads)
    }

    static func children(of parent: Int32) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.reduce(0) { count, name in
            guard Int32(name) != nil, let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return count }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent ? count + 1 : count
        }
    }
}
