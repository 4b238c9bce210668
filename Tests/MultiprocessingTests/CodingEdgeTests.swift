import Testing

@testable import Multiprocessing

/// A function type that is `private` at the top level of a file.
private struct PrivateDouble: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { 2 * x }
}

/// One that is `fileprivate`.
fileprivate struct FilePrivateDouble: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { 2 * x }
}

/// An internal type, nested in a private one.
private enum PrivateNamespace {
    struct Inner: ParallelFunction {
        func callAsFunction(_ x: Int) -> Int { x }
    }
}

/// An internal generic function type, to be given a private argument.
struct GenericIdentity<T: Codable & Sendable>: ParallelFunction {
    func callAsFunction(_ x: T) -> T { x }
}

/// A private initializer type.
private struct PrivateSetup: WorkerInitializer {
    func initialize() async throws {}
}

/// An internal function type (the control: it is found).
struct InternalDouble: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { 2 * x }
}

/// The edges of what crosses to a worker: types it cannot find, values nested deep, `Data`.
@Suite("Coding edges", .timeLimit(.minutes(3)))
struct CodingEdgeTests {
    /// The error `checkFindableByName` throws for `F`, or nil.
    private func findError<F: WorkerFunction>(_ type: F.Type) -> MultiprocessingError? {
        do {
            _ = try F.checkFindableByName()
            return nil
        } catch {
            return error as? MultiprocessingError
        }
    }

    @Test("private and fileprivate function types are refused as private, with the fix; local ones as local")
    func privateTypesNamed() throws {
        struct Local: ParallelFunction {
            func callAsFunction(_ x: Int) -> Int { x }
        }
        #expect(findError(InternalDouble.self) == nil)
        for (type, name) in [
            (PrivateDouble.self, "PrivateDouble"), (FilePrivateDouble.self, "FilePrivateDouble"),
            (PrivateNamespace.Inner.self, "Inner"), (GenericIdentity<PrivateNamespace.Inner>.self, "GenericIdentity"),
        ] as [(any WorkerFunction.Type, String)] {
            let found = findError(type)
            let error = try #require(found)
            #expect(error.code == .typeNotFound)
            #expect(error.message.contains(name))
            #expect(error.message.contains("declared `private` or `fileprivate`"), "\(error.message)")
            #expect(error.message.contains("Make it internal"))
            #expect(!error.message.contains("function body"))
        }
        let local = try #require(findError(Local.self))
        #expect(local.code == .typeNotFound)
        #expect(local.message.contains("declared inside a function body (a local type)"), "\(local.message)")
        #expect(!local.message.contains("private"))
        let closureLocal: any WorkerFunction.Type = {
            struct InClosure: ParallelFunction {
                func callAsFunction(_ x: Int) -> Int { x }
            }
            return InClosure.self
        }()
        let closureError = findError(closureLocal)
        #expect(try #require(closureError).message.contains("a local type"))
    }

    @Test("a worker that cannot find a private function or initializer type says it is private")
    func workerSideMessages() throws {
        let context = RunnerContext(maximumPayload: 1 << 20, progress: nil, timesItems: false)
        let privateName = try #require(_mangledTypeName(PrivateDouble.self))
        let empty: [UInt8] = [0]
        do {
            _ = try empty.withUnsafeBytes {
                try makeChunkRunner(typeName: privateName, functionBytes: $0, context: context)
            }
            Issue.record("a private type was found")
        } catch let error as MultiprocessingError {
            #expect(error.code == .typeNotFound)
            #expect(error.message.contains("declared `private` or `fileprivate`"), "\(error.message)")
        }
        let initializerName = try #require(_mangledTypeName(PrivateSetup.self))
        do {
            _ = try empty.withUnsafeBytes { try makeInitializer(typeName: initializerName, bytes: $0) }
            Issue.record("a private initializer type was found")
        } catch let error as MultiprocessingError {
            #expect(error.code == .typeNotFound)
            #expect(error.message.contains("declared `private` or `fileprivate`"), "\(error.message)")
        }
        do {
            _ = try PrivateSetup().initializeFrame()
            Issue.record("a private initializer type was accepted")
        } catch let error as MultiprocessingError {
            #expect(error.code == .typeNotFound)
            #expect(error.message.contains("the initializer type PrivateSetup cannot be found"), "\(error.message)")
            #expect(error.message.contains("Make it internal"))
        }
    }

    @Test("a pool refuses private and fileprivate function and initializer types, naming the fix, and goes on")
    func privateTypesThroughPool() async throws {
        let outcome = try await FixtureProcess.run(["private-types"], waitingFor: "maps of private types")
        for label in ["private", "fileprivate"] {
            let line = outcome.line("\(label): ")
            #expect(line.hasPrefix("\(label): code=function type not found index=nil"), "\(outcome.stdout)")
            #expect(line.contains("declared `private` or `fileprivate`"))
            #expect(line.contains("Make it internal"))
        }
        #expect(outcome.line("after") == "after [9]", "\(outcome.stderr)")
        let initializer = outcome.line("initializer: ")
        #expect(initializer.hasPrefix("initializer: code=function type not found"), "\(outcome.stdout)")
        #expect(initializer.contains("PrivateInitializer"))
        #expect(initializer.contains("declared `private` or `fileprivate`"))
    }

    @Test("Data of every shape crosses to a worker and back, as fast as [UInt8] within a small factor")
    func dataThroughPool() async throws {
        let outcome = try await FixtureProcess.run(["data", "10", "2"], waitingFor: "Data round trips")
        #expect(
            outcome.line("data counts ").hasPrefix("data counts [0, 1, 1999000, 10000000] "), "\(outcome.transcript)")
        let sent = try #require(outcome.list("sent", on: "data "), "\(outcome.transcript)")
        #expect(sent.count == 4 && Set(sent).count == 4, "four different values were sent: \(sent)")
        #expect(outcome.list("returned", on: "data ") == sent, "each Data came back with its bytes")
        let blob = try #require(outcome.value("sent", on: "blob "), "\(outcome.transcript)")
        #expect(blob.hasPrefix("b,") && blob.hasSuffix(",nil"), "\(blob)")
        #expect(outcome.value("returned", on: "blob ") == blob)
        let large = try #require(outcome.value("sent", on: "round trips "), "\(outcome.transcript)")
        #expect(outcome.list("returned", on: "round trips ") == ["bytes:\(large)", "data:\(large)"])
        // Before Data had the raw-bytes path, its round trip took hundreds of times as long
        // as the [UInt8] one (10 s against 0.03 s in a debug build).
        let times = outcome.line("seconds data").split(separator: " ").compactMap { Double($0) }
        #expect(times.count == 2)
        if times.count == 2 { #expect(times[0] < max(1, 20 * times[1]), "\(times)") }
    }

    /// Runs the fixture under `ulimit -s <kib>` (the stack of its main thread and, by
    /// default, of every thread it starts).
    private func stackLimited(_ kib: Int) -> [String] {
        ["/bin/sh", "-c", "ulimit -s \(kib) && exec \"$0\" \"$@\""]
    }

    @Test("the deepest value allowed (1,024 levels) crosses to a worker and back, in each direction")
    func deepestValueThroughPool() async throws {
        let outcome = try await FixtureProcess.run(
            ["deep", "1023"], launcher: stackLimited(8_192), waitingFor: "chains of 1,023 links")
        #expect(
            outcome.lines == ["input 1023", "result 1023", "echo 1023", "after 3"], "\(outcome.stdout)\(outcome.stderr)"
        )
    }

    @Test("one level more is refused by the depth limit with a short error, and the pool goes on")
    func tooDeepThroughPool() async throws {
        let outcome = try await FixtureProcess.run(
            ["deep", "1024"], launcher: stackLimited(8_192), waitingFor: "chains of 1,024 links")
        let input = outcome.line("input ")
        #expect(input.hasPrefix("input code=encoding failed index=0"), "\(outcome.stdout)")
        #expect(input.contains("Chain is nested more than 1024 levels deep"))
        #expect(input.contains("more levels) …"))
        #expect(input.count < 500, "\(input.count) characters")
        // A result that cannot be encoded fails its item (the worker's encoding error).
        let result = outcome.line("result ")
        #expect(result.hasPrefix("result code=encoding failed index=0"), "\(outcome.stdout)")
        #expect(result.contains("Chain is nested more than 1024 levels deep"))
        #expect(result.count < 1_000, "\(result.count) characters")
        #expect(outcome.line("echo ").hasPrefix("echo code=encoding failed index=0"))
        #expect(outcome.line("after ") == "after 3", "\(outcome.stderr)")
    }

    @Test("threads with small stacks refuse a deep value with an error instead of crashing")
    func deepValueOnSmallStacks() async throws {
        // 1 MiB stacks (the worker's main thread and the caller's threads) hold fewer levels.
        let outcome = try await FixtureProcess.run(
            ["deep", "1023"], launcher: stackLimited(1_024), waitingFor: "chains on 1 MiB stacks")
        #expect(outcome.status == 0 && !outcome.signaled, "\(outcome.stderr)")
        // The parent encodes on the caller's thread (1 MiB) or its supervisor thread (8 MiB
        // whatever the limit), so the input fails there or in the worker.
        for line in [outcome.line("input "), outcome.line("result "), outcome.line("echo ")] {
            #expect(line.contains("more than this thread's stack holds"), "\(line)")
        }
        #expect(outcome.line("after ") == "after 3", "\(outcome.stderr)")
    }
}
