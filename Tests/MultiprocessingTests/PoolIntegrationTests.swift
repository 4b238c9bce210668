import Foundation
import Testing

/// The pool against real worker processes: each scenario runs in a child process (the
/// `mp-fixture` executable) under a deadline, and is checked from its output.
@Suite("Process pool (real workers)", .timeLimit(.minutes(3)))
struct PoolIntegrationTests {
    @Test(
        "map equals a sequential map for 0, 1, fewer than the workers, and thousands of items",
        arguments: Engine.allCases)
    func mapMatchesSequential(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["map-random", "0", "1", "2", "3", "5000", "20000", "4"], environment: engine.environment,
            waitingFor: "maps of random inputs")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let maps = outcome.lines.filter { $0.hasPrefix("map size=") }
        #expect(maps.count == 6, "\(outcome.stderr)")
        for (line, size) in zip(maps, [0, 1, 2, 3, 5000, 20000]) {
            let map = FixtureProcess.Outcome(status: 0, signaled: false, stdout: line, stderr: "")
            let inputs = try #require(map.ints("inputs")).compactMap { $0 }
            let outputs = try #require(map.ints("outputs"))
            #expect(map.int("size") == size && inputs.count == size, "\(line.prefix(200))")
            #expect(outputs == inputs.map { $0 &* $0 }, "the map of \(size) items differs from the sequential map")
        }
        #expect(outcome.line("workers") == "workers 4 children \(engine.children(4))")
    }

    @Test("fixed chunk sizes, including larger than the input, keep order", arguments: Engine.allCases)
    func fixedChunks(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["chunked"], environment: engine.environment, waitingFor: "maps with fixed chunk sizes")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        for size in [1, 7, 1000, 5000] {
            let outputs = outcome.ints("outputs", on: "chunkSize=\(size) ")
            #expect(outputs == (0..<1000).map { $0 * $0 }, "chunkSize \(size): \(outcome.transcript.prefix(300))")
        }
    }

    @Test(
        "a throwing function fails the right index with the remote error; partial results kept; the next call works",
        arguments: Engine.allCases)
    func throwingFunction(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["throwing"], environment: engine.environment, waitingFor: "a map whose item 37 throws")
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
        #expect(
            outcome.lines.first?.hasPrefix(
                "code=function threw index=37 type=mp_fixture.FailOn.Boom remote=boom at 37 message=item 37 failed in worker "
            ) == true, "\(outcome.stdout)")
        // FailOn returns x + 1: each result received sits at its own index; item 37 has none.
        let partial = try #require(outcome.ints("values", on: "partial "), "\(outcome.transcript)")
        #expect(outcome.int("count", on: "partial ") == 100 && partial.count == 100)
        #expect(partial.count > 37 && partial[37] == nil)
        #expect(
            partial.indices.allSatisfy { partial[$0] == nil || partial[$0] == $0 + 1 },
            "a wrong partial result: \(partial)")
        #expect(partial.contains { $0 != nil }, "results received before the failure are kept")
        #expect((0..<2).contains(outcome.int("slot", on: "worker ") ?? -1), "\(outcome.line("worker "))")
        #expect(outcome.ints("values", on: "next ") == (1...100).map { $0 })
    }

    @Test("a function's stored properties arrive, and its value is sent to each worker once per call")
    func storedPropertiesSentOncePerWorker() async throws {
        let outcome = try await FixtureProcess.run(
            ["stored-props"], waitingFor: "two calls of 200 items in chunks of 3")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        // Decoded once for call 1, once more for call 2, in each of the 2 workers.
        #expect(
            outcome.lines.map { $0.prefix { $0 != "=" } } == [
                "call 1 labels [\"call1\"] workers 2 decodes [1, 1] values",
                "call 2 labels [\"call2\"] workers 2 decodes [2, 2] values",
            ], "\(outcome.transcript)")
        for call in 1...2 {
            #expect(outcome.ints("values", on: "call \(call) ") == (0..<200).map { $0 + 1000 * call })
        }
    }

    @Test("nested, generic and async function types work", arguments: Engine.allCases)
    func nestedAndGenericTypes(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["nested-generic"], environment: engine.environment, waitingFor: "nested and generic function types")
        #expect(
            outcome.lines == ["[\"inner-1\", \"inner-2\", \"inner-3\"]", "[2.5, 5.0, 10.0]", "[4.0, 3.0]", "42"],
            "\(outcome.stderr)")
    }

    @Test("a function type declared inside a function body is a clear error naming the fix", arguments: Engine.allCases)
    func localTypeError(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["local-type"], environment: engine.environment, waitingFor: "a map of a local type")
        let first = outcome.lines.first ?? ""
        #expect(first.hasPrefix("code=function type not found index=nil"))
        #expect(first.contains("Local"))
        #expect(first.contains("declared inside a function body"))
        #expect(first.contains("message=the function type Local cannot be found by name in a worker process"))
        #expect(first.contains("Move `struct Local` to the top level of a file, or nest it in another type."))
        #expect(outcome.line("after") == "after [9]")
    }

    @Test("one worker", arguments: Engine.allCases, [(1, 10), (5, 40)])
    func workerCounts(engine: Engine, counts: (workers: Int, items: Int)) async throws {
        let (workers, items) = counts
        let outcome = try await FixtureProcess.run(
            ["workers", "\(workers)", "\(items)"], environment: engine.environment, waitingFor: "a pool of \(workers)")
        #expect(
            outcome.lines == [
                "workers \(workers) children \(engine.children(workers)) results \(items)", "children after close 0",
            ],
            "\(outcome.stderr)")
    }

    @Test("lines a function prints all reach stdout")
    func printedLinesArrive() async throws {
        let outcome = try await FixtureProcess.run(["print-lines", "500"], waitingFor: "500 printed lines")
        let printed = outcome.lines.filter { $0.hasSuffix("from a worker") }
        #expect(Set(printed) == Set((0..<500).map { "line \($0) from a worker" }))
        #expect(printed.count == 500)
        #expect(outcome.lines.last == "done printing")
    }

    @Test("a worker killed with SIGKILL mid-map makes the call throw within a second; the pool goes on")
    func killedWorker() async throws {
        let outcome = try await FixtureProcess.run(["kill-mid-map"], waitingFor: "a map whose worker is killed")
        #expect(outcome.status == 0, "\(outcome.transcript)")
        let delay = try #require(outcome.int("after-kill-ms", on: "threw "), "\(outcome.transcript)")
        #expect(delay < 1000, "the map threw \(delay) ms after its worker was killed")
        let error = outcome.lines.dropFirst().first ?? ""
        #expect(error.hasPrefix("code=worker died index="))
        #expect(error.contains("was killed by signal 9 (SIGKILL) — often the kernel's out-of-memory killer"))
        #expect(error.hasSuffix("[signal 9]"))
        #expect(
            error.contains("The worker has been replaced; anything it printed went to this program's stdout or stderr.")
        )
        #expect(outcome.int("workers", on: "after kill ") == 2, "\(outcome.transcript)")
        #expect(outcome.ints("values", on: "after kill ") == (0..<50).map { $0 * $0 })
        #expect(outcome.line("children after close") == "children after close 0")
    }

    @Test("exit(), fatalError and a segmentation fault in a function each fail the item, naming the cause")
    func crashes() async throws {
        let outcome = try await FixtureProcess.run(["crash"], waitingFor: "three crashing maps")
        #expect(outcome.status == 0, "\(outcome.stdout)")
        let lines = outcome.lines
        #expect(lines.count == 5, "\(outcome.stdout)")
        guard lines.count == 5 else { return }
        #expect(lines[0].hasPrefix("code=worker died index=1 "))
        #expect(lines[0].contains(" exited with status 3 while running item 1."))
        #expect(
            lines[1].contains(
                " was killed by signal 4 (SIGILL: illegal instruction — a Swift runtime trap such as fatalError, a failed precondition or an out-of-range index) while running item 1; its last lines on stderr: \""
            ))
        #expect(lines[1].contains("Fatal error: deliberate crash in a worker\". The worker has been replaced"))
        #expect(lines[2].contains(" was killed by signal 11 (SIGSEGV: segmentation fault) while running item 1."))
        #expect(lines[0].hasSuffix("[exit 3]"))
        #expect(lines[1].hasSuffix("[signal 4]"))
        #expect(lines[2].hasSuffix("[signal 11]"))
        #expect(lines[3] == "after crashes [0, 5]")
        #expect(lines[4] == "children after close 0")
        #expect(
            outcome.stderr.contains("Fatal error: deliberate crash in a worker"),
            "the worker's own crash report reaches stderr")
    }

    @Test("workers that skip bootstrap() are refused with the fix, and never start workers of their own")
    func childSkipsBootstrap() async throws {
        let outcome = try await FixtureProcess.run(
            ["child-skips-bootstrap"], waitingFor: "a pool whose workers skip bootstrap")
        let first = outcome.lines.first ?? ""
        #expect(first.hasPrefix("code=bootstrap missing index=nil"), "\(outcome.stdout)")
        #expect(first.contains("the worker process (pid "))
        #expect(first.contains("Make `Multiprocessing.bootstrap()` the first line of your program's main"))
        #expect(outcome.line("children") == "children 0")
    }

    @Test("a program that never called bootstrap() gets an error naming the fix and spawns nothing")
    func missingBootstrap() async throws {
        let outcome = try await FixtureProcess.run(["no-bootstrap"], waitingFor: "pool creation without bootstrap")
        let first = outcome.lines.first ?? ""
        #expect(first.hasPrefix("code=bootstrap missing"))
        #expect(first.contains("Make `Multiprocessing.bootstrap()` the first line of your program's main"))
        #expect(outcome.line("children") == "children 0")
    }

    @Test("creating a pool inside a worker is a clear error")
    func poolInsideWorker() async throws {
        let outcome = try await FixtureProcess.run(["pool-in-worker"], waitingFor: "a pool created inside a worker")
        #expect(
            outcome.lines.first?.hasPrefix(
                "pool created inside a worker: a pool cannot be created inside a worker process") == true,
            "\(outcome.stdout)\(outcome.stderr)")
    }

    @Test("using a closed pool is a clear error; closing twice is harmless", arguments: Engine.allCases)
    func closedPool(engine: Engine) async throws {
        let outcome = try await FixtureProcess.run(
            ["closed-pool"], environment: engine.environment, waitingFor: "a closed pool")
        #expect(outcome.lines.first == "[1, 4]")
        #expect(outcome.lines.dropFirst().first?.hasPrefix("code=pool closed index=nil") == true)
        #expect(outcome.line("children") == "children 0")
    }

    @Test("apply runs one call; an empty map returns at once", arguments: Engine.allCases)
    func applyAndEmpty(engine: Engine) async throws {
        let apply = try await FixtureProcess.run(["apply"], environment: engine.environment, waitingFor: "apply")
        #expect(apply.lines == ["apply 144"])
        let empty = try await FixtureProcess.run(["empty"], environment: engine.environment, waitingFor: "an empty map")
        #expect(empty.lines == ["empty []"])
    }

    @Test("no descriptors leak and no worker processes remain after pools close")
    func noLeaks() async throws {
        let outcome = try await FixtureProcess.run(["leaks"], waitingFor: "three pools opened and closed")
        #expect(outcome.int("before", on: "descriptors ") ?? 0 > 0, "\(outcome.stdout)")
        #expect(outcome.int("before", on: "descriptors ") == outcome.int("after", on: "descriptors "))
        let before = outcome.line("before: ").dropFirst("before: ".count)
        #expect(!before.isEmpty && before == outcome.line("after: ").dropFirst("after: ".count), "\(outcome.stdout)")
        #expect(outcome.line("children") == "children 0")
    }

    @Test("workers exit with their parent when it is killed, even while computing")
    func parentDeath() async throws {
        let (process, out, _) = try FixtureProcess.start(["parent-death"])
        var pids: [Int32] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while pids.isEmpty {
            if ContinuousClock.now > deadline || !process.isRunning {
                process.terminate()
                Issue.record("timed out waiting for the fixture to print its worker pids")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("children ") }) {
                pids = line.split(separator: " ").dropFirst().compactMap { Int32($0) }
            }
        }
        #expect(pids.count == 2)
        try await Task.sleep(for: .milliseconds(200))  // both workers are now spinning
        #expect(pids.allSatisfy { !processIsGone($0) }, "the workers should be alive before the parent dies")
        kill(process.processIdentifier, SIGKILL)
        let workers = pids
        let (gone, waited) = await OwnThread.wait(timeout: .seconds(6)) {
            workers.allSatisfy(processIsGone)
        }
        #expect(gone, "workers \(pids) still alive 6 s after their parent was killed")
        // The kernel's parent-death signal acts at once; the bound is loose for a machine
        // busy with the other tests. The wait runs on a thread of its own: a test's
        // Task.sleep could wake seconds late while other tests hold the concurrency pool.
        #expect(waited < .seconds(5), "workers took \(waited) to exit after the parent was killed")
    }
}
