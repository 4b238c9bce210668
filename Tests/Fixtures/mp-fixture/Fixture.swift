// A program the integration tests drive: every scenario runs in its own process, so
// process counts, descriptors and crashes are checked from the outside.
//
//   mp-fixture <scenario> [arguments...]
//
// Each scenario prints what it saw (results, error codes and messages, counts, timings, often
// as `key=value` words: see Facts.swift); the tests judge it. A scenario exits non-zero only
// when it cannot run (an unknown name, an error it did not expect: "ERROR ...", status 3).

import Logging
import Multiprocessing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x &* x }
}

/// Takes 20 ms an item and fails for one value.
struct SlowFailOn: ParallelFunction {
    var bad: Int
    func callAsFunction(_ x: Int) throws -> Int {
        usleep(20_000)
        if x == bad { throw FailOn.Boom(value: x) }
        return x
    }
}

/// Sleeps, then squares, and says on which node it ran (multi-node scenarios).
struct SquareOnNode: ParallelFunction {
    var milliseconds: Int
    struct Out: Codable, Sendable {
        var square: Int
        var node: String
    }
    func callAsFunction(_ x: Int) -> Out {
        usleep(UInt32(milliseconds * 1000))
        let node = getenv("SLURMD_NODENAME").map { String(cString: $0) } ?? "?"
        return Out(square: x * x, node: node)
    }
}

struct FailOn: ParallelFunction {
    struct Boom: Error, CustomStringConvertible {
        var value: Int
        var description: String { "boom at \(value)" }
    }
    var bad: Int
    func callAsFunction(_ x: Int) throws -> Int {
        if x == bad { throw Boom(value: x) }
        return x + 1
    }
}

/// Counts how often its value is decoded in each worker: the function value must be sent
/// to a worker once per call, not once per chunk.
struct Offset: ParallelFunction {
    nonisolated(unsafe) static var decodes = 0
    var offset: Int
    var label: String

    struct Out: Codable, Sendable {
        var value: Int
        var pid: Int32
        var decodes: Int
        var label: String
    }

    init(offset: Int, label: String) {
        self.offset = offset
        self.label = label
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        offset = try c.decode(Int.self, forKey: .offset)
        label = try c.decode(String.self, forKey: .label)
        Offset.decodes += 1
    }

    func callAsFunction(_ x: Int) -> Out {
        Out(value: x + offset, pid: getpid(), decodes: Offset.decodes, label: label)
    }
}

enum Outer {
    struct Inner: ParallelFunction {
        func callAsFunction(_ x: Int) -> String { "inner-\(x)" }
    }
}

struct Scale<T: BinaryFloatingPoint & Codable & Sendable>: ParallelFunction {
    var factor: T
    func callAsFunction(_ x: T) -> T { x * factor }
}

struct Pid: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int32 { getpid() }
}

struct Sleep: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        usleep(UInt32(milliseconds * 1000))
        return x
    }
}

struct Spin: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        var v = UInt64(x)
        while true { v = v &* 6_364_136_223_846_793_005 &+ 1 }
    }
}

/// Dies in the way its input says: 1 exit(3), 2 fatalError, 3 a bad pointer; other inputs pass.
struct Crash: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        switch x {
        case 1: exit(3)
        case 2: fatalError("deliberate crash in a worker")
        case 3: UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = x  // a real segmentation fault
        default: break
        }
        return x
    }
}

/// Busy for about `milliseconds` of CPU time, then returns its input.
struct Busy: ParallelFunction {
    var milliseconds: Int
    func callAsFunction(_ x: Int) -> Int {
        let end = now() + Double(milliseconds) / 1000
        var v = UInt64(x)
        while now() < end { v = v &* 6_364_136_223_846_793_005 &+ 1 }
        return x + Int(v & 0)
    }
}

struct Power: ParallelFunction {
    func callAsFunction(_ args: Arguments<Int, Int>) -> Int {
        let (base, exponent) = args.values
        return (0..<exponent).reduce(1) { product, _ in product * base }
    }
}

struct Rectangle: ParallelFunction {
    struct Size: Codable, Sendable {
        var width: Double
        var height: Double
    }
    func callAsFunction(_ size: Size) -> Double { size.width * size.height }
}

/// A lazy input that records how far it has been read.
final class CountingSequence: Sequence, @unchecked Sendable {
    var pulled = 0
    let count: Int
    init(count: Int) { self.count = count }
    func makeIterator() -> AnyIterator<Int> {
        AnyIterator { [self] in
            guard pulled < count else { return nil }
            pulled += 1
            return pulled - 1
        }
    }
}

/// CPU time (user + system, in clock ticks) a process has used.
func cpuTicks(_ pid: Int32) -> Int {
    guard let stat = readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return -1 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}

func peakRSSKiB() -> Int {
    guard let status = readFile("/proc/self/status") else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
    return -1
}

/// An input whose decoding, in the worker, crashes for the value 13.
struct FragileInput: Codable, Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int.self)
        if value == 13 && Multiprocessing.isWorker { abort() }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

struct DecodeCrash: ParallelFunction {
    func callAsFunction(_ x: FragileInput) -> Int { x.value }
}

/// An output whose encoding, in the worker, crashes for the value 13.
struct FragileOutput: Codable, Sendable {
    var value: Int
    init(_ value: Int) { self.value = value }
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int.self) }
    func encode(to encoder: any Encoder) throws {
        if value == 13 && Multiprocessing.isWorker { abort() }
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

struct EncodeCrash: ParallelFunction {
    func callAsFunction(_ x: Int) -> FragileOutput { FragileOutput(x) }
}

/// An output that cannot be encoded: its encode(to:) throws.
struct Unencodable: Codable, Sendable {
    struct Refused: Error, CustomStringConvertible { var description: String { "refused to encode" } }
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws { throw Refused() }
}

struct MakeUnencodable: ParallelFunction {
    func callAsFunction(_ x: Int) -> Unencodable { Unencodable() }
}

/// Crashes (SIGKILL to itself) the first time it sees item `item` in a run, then
/// succeeds: the first attempt leaves a marker file.
struct CrashOnce: ParallelFunction {
    var marker: String
    var item = 7
    func callAsFunction(_ x: Int) -> Int {
        if x == item && access(marker, F_OK) != 0 {
            let fd = open(marker, O_CREAT | O_WRONLY, 0o644)
            close(fd)
            kill(getpid(), SIGKILL)
        }
        return x * 10
    }
}

struct FailingInitializer: WorkerInitializer {
    struct Broken: Error, CustomStringConvertible { var description: String { "the model file is missing" } }
    func initialize() throws { throw Broken() }
}

nonisolated(unsafe) var initializedGreeting = "not initialized"

struct Greeter: WorkerInitializer {
    var greeting: String
    func initialize() { initializedGreeting = greeting }
}

struct Greet: ParallelFunction {
    func callAsFunction(_ x: Int) -> String { "\(initializedGreeting) \(x)" }
}

/// An initializer that makes the worker abort when it exits (a crash during shutdown).
struct AbortAtExit: WorkerInitializer {
    func initialize() { atexit { abort() } }
}

/// Prints a line, then kills its own worker for item 3.
struct PrintThenDie: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        print("line \(x) from a worker")
        if x == 3 {
            print("last words of item 3")
            kill(getpid(), SIGKILL)
        }
        return x
    }
}

func cpusAllowed(_ pid: Int32) -> String {
    let status = readFile("/proc/\(pid)/status") ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") } ?? ""
    return String(line.split(separator: "\t").last ?? "?")
}

struct PrintLines: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int {
        print("line \(x) from a worker")
        return x
    }
}

struct NestedPool: AsyncParallelFunction {
    func callAsFunction(_ x: Int) async -> String {
        do {
            _ = try await ProcessPool(workers: 1)
            return "created"
        } catch let error as MultiprocessingError {
            return "\(error.code): \(error.message)"
        } catch {
            return "other: \(error)"
        }
    }
}

struct AsyncDouble: AsyncParallelFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(1))
        return 2 * x
    }
}

/// The README's snippets, compiled where a user writes them: on the main actor (a
/// `@main` type's `main`), so a snippet that only compiles elsewhere fails the build.
@MainActor
func readmeSnippets() async throws {
    try await withProcessPool { pool in
        print(try await pool.map(Square(), [1, 2, 3, 4, 5, 6, 7, 8]))
        let powers = try await pool.starmap(Power(), [(2, 10), (3, 2)])  // [1024, 9]
        print(powers)
        var total = 0
        for try await item in pool.imap(Square(), (0..<1_000).lazy.map { @Sendable in $0 }) {
            total &+= try item.get()  // in input order; memory stays bounded
        }
        print(total)
        var unordered = 0
        for try await item in pool.imapUnordered(Square(), 0..<1_000) { unordered &+= try item.get() }
        print(unordered)
        let sum = try await pool.mapReduce(Square(), 0..<1_000, into: 0, ordered: false) {
            $0 &+= $1  // folded here, as results arrive
        }
        print(sum)
        let call = pool.applyAsync(Square(), 12)
        print(try await call.value)
    }
}

final class Updates: Sendable {
    let list = Mutex<[CallProgress]>([])
}

/// Prints each log record as one line on stdout: `LOG <level> <message> worker=<slot>`.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let worker = event.metadata?["worker"].map { " worker=\($0)" } ?? ""
        let termination = event.metadata?["termination"].map { " termination=\($0)" } ?? ""
        print("LOG \(event.level) \(event.message)\(worker)\(termination)")
    }
}

func children() -> [Int32] {
    // Direct children of this process, zombies included (they are not gone yet).
    let me = getpid()
    var result: [Int32] = []
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = Int32(name), let stat = readFile("/proc/\(pid)/stat") else { continue }
        // pid (comm) state ppid ...
        guard let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == me { result.append(pid) }
    }
    return result.sorted()
}

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func openDescriptors() -> [String] {
    var result: [String] = []
    guard let dir = opendir("/proc/self/fd") else { return [] }
    let own = dirfd(dir)
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let fd = Int32(name), fd != own {
            var target = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/self/fd/\(name)", &target, 255)
            let link = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            result.append("\(name)->\(link)")
        }
    }
    closedir(dir)
    return result.sorted()
}

/// A scenario that cannot run as asked (an unknown name, a setup step that failed): not a
/// verdict on the library, which the tests give from what the scenario prints.
func fail(_ message: String) -> Never {
    print("fixture error: \(message)")
    fflush(nil)
    exit(1)
}

func describe(_ error: any Error) -> String {
    if let error = error as? MultiprocessingError {
        var text =
            "code=\(error.code) index=\(error.itemIndex.map(String.init) ?? "nil") type=\(error.remoteErrorType ?? "nil") remote=\(error.remoteErrorMessage ?? "nil") message=\(error.message)"
        // As a program reads a termination: its accessors (ProcessTermination is a struct).
        if let status = error.termination?.exitStatus { text += " [exit \(status)]" }
        if let signal = error.termination?.signal { text += " [signal \(signal)]" }
        if let node = error.termination?.lostNode { text += " [lost \(node)]" }
        return text
    }
    return "other error: \(error)"
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

@main
struct Fixture {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let scenario = arguments.first ?? ""
        // "child-skips-bootstrap": the parent calls bootstrap() but its workers do not,
        // as a program that calls it conditionally would.
        if scenario == "crash-at-start" && getenv("SWIFT_MULTIPROCESSING_WORKER") != nil { abort() }
        if scenario != "no-bootstrap"
            && !(scenario == "child-skips-bootstrap" && getenv("SWIFT_MULTIPROCESSING_WORKER") != nil)
        {
            Multiprocessing.bootstrap()
        }
        let args = arguments.dropFirst().map { Int($0) ?? 0 }
        do {
            try await run(scenario, args)
        } catch {
            print("ERROR \(describe(error))")
            exit(3)
        }
    }

    static func run(_ scenario: String, _ args: [Int]) async throws {
        switch scenario {
        case "nodes-map":
            // nodes-map <items> <milliseconds per item> <retries>: a map over every node of
            // the job; prints the pool's size, then the sum of squares and the nodes used.
            var options = ProcessPool.Options()
            options.retries = args[2]
            do {
                try await withProcessPool(options: options) { pool in
                    print("workers=\(pool.workerCount) source=\(pool.workerCountDecision.source)")
                    fflush(nil)
                    let outputs = try await pool.map(
                        SquareOnNode(milliseconds: args[1]), Array(0..<args[0]), chunkSize: 1)
                    let nodes = Set(outputs.map(\.node)).sorted().joined(separator: ",")
                    print("sum=\(outputs.map(\.square).reduce(0, +)) nodes=\(nodes)")
                    print(await pool.report())
                }
            } catch {
                print("error: \(describe(error))")
            }
        case "nodes-cancel":
            // A call cancelled while every worker of both nodes runs it: each host stops its
            // workers at once; then the pool must still work on both nodes.
            try await withProcessPool { pool in
                print("workers=\(pool.workerCount)")
                fflush(nil)
                let slow = Task { try await pool.map(SquareOnNode(milliseconds: 3000), Array(0..<8), chunkSize: 1) }
                try await Task.sleep(for: .milliseconds(1500))
                slow.cancel()
                if case .failure(let error) = await slow.result { print("cancelled: \(describe(error))") }
                let outputs = try await pool.map(SquareOnNode(milliseconds: 20), Array(0..<40), chunkSize: 1)
                let nodes = Set(outputs.map(\.node)).sorted().joined(separator: ",")
                print("after sum=\(outputs.map(\.square).reduce(0, +)) nodes=\(nodes) workers=\(pool.workerCount)")
            }
        case "nodes-after-loss":
            // Both nodes lost during a call: that call fails, and so does the next one, at once.
            try await withProcessPool { pool in
                print("workers=\(pool.workerCount)")
                fflush(nil)
                do {
                    _ = try await pool.map(SquareOnNode(milliseconds: 100), Array(0..<400), chunkSize: 1)
                    print("first: ok")
                } catch {
                    print("first: \(describe(error))")
                }
                let start = now()
                do {
                    _ = try await pool.map(SquareOnNode(milliseconds: 1), Array(0..<4))
                    print("second: ok")
                } catch {
                    print("second: \(describe(error))")
                }
                print("second seconds=\(elapsed(since: start))")
            }
        case "map-random":
            // sizes..., workers = last argument
            let workers = args.last!
            var generator = SystemRandomNumberGenerator()
            try await withProcessPool(workers: workers) { pool in
                for size in args.dropLast() {
                    let inputs = (0..<size).map { _ in Int.random(in: -1_000_000...1_000_000, using: &generator) }
                    let got = try await pool.map(Square(), inputs)
                    print("map size=\(size) inputs=\(list(inputs)) outputs=\(list(got))")
                }
                print("workers \(pool.workerCount) children \(children().count)")
            }
        case "chunked":
            try await withProcessPool(workers: 2) { pool in
                let inputs = Array(0..<1000)
                for size in [1, 7, 1000, 5000] {
                    let got = try await pool.map(Square(), inputs, chunkSize: size)
                    print("chunkSize=\(size) outputs=\(list(got))")
                }
            }
        case "throwing":
            try await withProcessPool(workers: 2) { pool in
                do {
                    let out = try await pool.map(FailOn(bad: 37), Array(0..<100))
                    print("map returned count=\(out.count)")
                } catch let error as MultiprocessingError {
                    print(describe(error))
                    let partial = error.partialResults(as: Int.self)
                    print("partial count=\(partial?.count ?? -1) values=\(optionalList(partial ?? []))")
                    print("worker slot=\(error.worker.map { String($0.slot) } ?? "nil")")
                }
                let next = try await pool.map(FailOn(bad: -1), Array(0..<100))
                print("next values=\(list(next))")
            }
        case "stored-props":
            try await withProcessPool(workers: 2) { pool in
                for call in 1...2 {
                    let out = try await pool.map(
                        Offset(offset: 1000 * call, label: "call\(call)"), Array(0..<200), chunkSize: 3)
                    let labels = Set(out.map(\.label))
                    var perWorker: [Int32: Int] = [:]
                    for o in out { perWorker[o.pid] = max(perWorker[o.pid] ?? 0, o.decodes) }
                    print(
                        "call \(call) labels \(labels.sorted()) workers \(perWorker.count) decodes \(perWorker.values.sorted()) values=\(list(out.map(\.value)))"
                    )
                }
            }
        case "nested-generic":
            try await withProcessPool(workers: 2) { pool in
                print(try await pool.map(Outer.Inner(), [1, 2, 3]))
                print(try await pool.map(Scale<Double>(factor: 2.5), [1.0, 2.0, 4.0]))
                print(try await pool.map(Scale<Float>(factor: 0.5), [8, 6]))
                print(try await pool.apply(AsyncDouble(), 21))
            }
        case "local-type":
            struct Local: ParallelFunction {
                func callAsFunction(_ x: Int) -> Int { x }
            }
            try await withProcessPool(workers: 1) { pool in
                do {
                    print("map returned \(try await pool.map(Local(), [1, 2]))")
                } catch {
                    print(describe(error))
                }
                print("after \(try await pool.map(Square(), [3]))")
            }
        case "workers":
            // args: requested count, items
            try await withProcessPool(workers: args[0]) { pool in
                let pids = try await pool.map(Sleep(milliseconds: 20), Array(0..<args[1]), chunkSize: 1)
                let kids = children()
                print("workers \(pool.workerCount) children \(kids.count) results \(pids.count)")
            }
            print("children after close \(children().count)")
        case "print-lines":
            try await withProcessPool(workers: 2) { pool in
                _ = try await pool.map(PrintLines(), Array(0..<args[0]))
            }
            print("done printing")
        case "kill-mid-map":
            try await withProcessPool(workers: 2) { pool in
                let victim = Task { () -> Double? in
                    try await Task.sleep(for: .milliseconds(300))
                    guard let pid = children().first else { return nil }
                    kill(pid, SIGKILL)
                    return now()
                }
                do {
                    let out = try await pool.map(Sleep(milliseconds: 50), Array(0..<400), chunkSize: 1)
                    print("map returned count=\(out.count) killed=\(try await victim.value != nil)")
                } catch {
                    let delay = try await victim.value.map { "\(Int((now() - $0) * 1000))" } ?? "no-worker-killed"
                    print("threw after-kill-ms=\(delay)")
                    print(describe(error))
                }
                let again = try await pool.map(Square(), Array(0..<50))
                print("after kill workers=\(children().count) values=\(list(again))")
            }
            print("children after close \(children().count)")
        case "cpus":
            let decision = Multiprocessing.defaultWorkerCount()
            print("count \(decision.count) source \(decision.source.rawValue)")
            for warning in decision.warnings { print("warning \(warning)") }
            if args.first == 1 {
                try await withProcessPool { pool in print("pool \(pool.workerCount)") }
            }
        case "no-bootstrap":
            do {
                let pool = try await ProcessPool(workers: 2)
                print("pool started workers=\(pool.workerCount)")
            } catch {
                print(describe(error))
            }
            print("children \(children().count)")
        case "crash":
            try await withProcessPool(workers: 2) { pool in
                for kind in 1...3 {
                    do {
                        print("crash \(kind) returned \(try await pool.map(Crash(), [0, kind, 0], chunkSize: 1))")
                    } catch {
                        print(describe(error))
                    }
                }
                print("after crashes \(try await pool.map(Crash(), [0, 5]))")
            }
            print("children after close \(children().count)")
        case "child-skips-bootstrap":
            do {
                let pool = try await ProcessPool(workers: 2)
                print("pool started workers=\(pool.workerCount)")
            } catch {
                print(describe(error))
            }
            print("children \(children().count)")
        case "imap-rss":
            // args: items. Streams a lazy input through the ordered stream, summing.
            let count = args[0]
            var sum = 0
            var seen = 0
            var outOfOrder = 0  // items whose index was not their place in the stream
            try await withProcessPool(workers: 2) { pool in
                for try await item in pool.imap(Square(), (0..<count).lazy.map { $0 }) {
                    if item.index != seen { outOfOrder += 1 }
                    sum = sum &+ (try item.get())
                    seen += 1
                }
            }
            print("count=\(seen) sum=\(sum) out-of-order=\(outOfOrder)")
            print("peak rss kib \(peakRSSKiB())")
        case "imap-backpressure":
            // A consumer that takes 100 items slowly, then stops: the input is read only
            // as far as the window allows.
            let input = CountingSequence(count: 1_000_000_000)
            try await withProcessPool(workers: 2) { pool in
                var taken = 0
                for try await item in pool.imap(Square(), input, chunkSize: 10) {
                    _ = try item.get()
                    taken += 1
                    if taken == 100 { break }
                    try await Task.sleep(for: .milliseconds(1))
                }
                try await Task.sleep(for: .milliseconds(100))
                print("taken=\(taken) pulled=\(input.pulled)")
                print("after \(try await pool.map(Square(), [7]))")
            }
        case "imap-failures":
            try await withProcessPool(workers: 2) { pool in
                var ordered: [String] = []
                for try await item in pool.imap(FailOn(bad: 5), Array(0..<12), chunkSize: 3) {
                    switch item.result {
                    case .success(let v): ordered.append("\(item.index):\(v)")
                    case .failure(let e): ordered.append("\(item.index):\(e.code)@\(e.itemIndex ?? -1)")
                    }
                }
                print(ordered.joined(separator: " "))
                var unordered: [Int: String] = [:]
                for try await item in pool.imapUnordered(FailOn(bad: 7), Array(0..<12), chunkSize: 2) {
                    unordered[item.index] = (try? item.get()).map(String.init) ?? "E"
                }
                print((0..<12).map { unordered[$0] ?? "missing" }.joined(separator: " "))
            }
        case "unordered":
            // args: items. Uneven work; every index must come back exactly once.
            // Prints the indexes in the order they came, and the value each came with.
            try await withProcessPool(workers: 2) { pool in
                var indexes: [Int] = []
                var values: [String] = []
                for try await item in pool.imapUnordered(Sleep(milliseconds: 1), (0..<args[0]).map { $0 }) {
                    indexes.append(item.index)
                    values.append((try? item.get()).map(String.init) ?? "failed")
                }
                print("count=\(indexes.count) indexes=\(list(indexes)) values=\(list(values))")
            }
        case "apply-async":
            try await withProcessPool(workers: 2) { pool in
                let calls = (0..<args[0]).map { pool.applyAsync(Square(), $0) }
                var values = [Int](repeating: -1, count: calls.count)
                for i in (0..<args[0]).reversed() { values[i] = try await calls[i].value }
                print("awaited=\(calls.count) values=\(list(values))")
                let slow = pool.applyAsync(Busy(milliseconds: 5000), 1)
                try await Task.sleep(for: .milliseconds(200))
                slow.cancel()
                do {
                    print("cancelled call returned \(try await slow.value)")
                } catch {
                    print("cancelled: \(describe(error))")
                }
                print("after cancel \(try await pool.apply(Square(), 9))")
                // Cancelling the task that awaits a submitted call cancels the call.
                let pending = pool.applyAsync(Busy(milliseconds: 5000), 2)
                let waiter = Task { try await pending.value }
                try await Task.sleep(for: .milliseconds(200))
                let cancelledAt = now()
                waiter.cancel()
                do {
                    print("awaiting task returned \(try await waiter.value)")
                } catch {
                    print("awaiting task cancelled: ms=\(Int((now() - cancelledAt) * 1000)) \(describe(error))")
                }
            }
        case "cancel-stream":
            try await withProcessPool(workers: 2) { pool in
                let consumer = Task {
                    var got = 0
                    for try await _ in pool.imap(Busy(milliseconds: 5000), Array(0..<10), chunkSize: 1) { got += 1 }
                    return got
                }
                // Wait (up to 10 s on a loaded machine) until both workers are computing.
                var busyBefore: [Int] = []
                for _ in 0..<200 {
                    try await Task.sleep(for: .milliseconds(50))
                    busyBefore = children().map(cpuTicks)
                    if busyBefore.count == 2 && busyBefore.allSatisfy({ $0 >= 5 }) { break }
                }
                consumer.cancel()
                let got = try? await consumer.value
                try await Task.sleep(for: .milliseconds(300))
                // The stopped workers are replaced: on a loaded machine that can take a while.
                var workers = children()
                for _ in 0..<100 where workers.count != 2 {
                    try await Task.sleep(for: .milliseconds(100))
                    workers = children()
                }
                let first = workers.map(cpuTicks)
                try await Task.sleep(for: .milliseconds(500))
                let second = workers.map(cpuTicks)
                // CPU ticks of each worker: while busy; then twice, 500 ms apart, after the cancel.
                print("busy ticks=\(list(busyBefore)) consumer got \(got.map(String.init) ?? "error")")
                print("workers \(workers.count) ticks=\(list(first)) later=\(list(second))")
                print("after \(try await pool.map(Square(), [1, 2, 3]))")
            }
        case "starmap":
            try await withProcessPool(workers: 2) { pool in
                print(try await pool.starmap(Power(), [(2, 10), (3, 2), (10, 0)]))
                print(try await pool.map(Rectangle(), [.init(width: 2, height: 3), .init(width: 0.5, height: 4)]))
            }
        case "map-reduce":
            try await withProcessPool(workers: 2) { pool in
                let ordered = try await pool.mapReduce(Square(), 0..<1000, into: [Int]()) { $0.append($1) }
                print("ordered values=\(list(ordered))")
                let total = try await pool.mapReduce(Square(), 0..<100_000, into: 0, ordered: false) { $0 &+= $1 }
                print("unordered sum \(total)")
                do {
                    print(
                        "mapReduce returned \(try await pool.mapReduce(FailOn(bad: 50), 0..<100, into: 0) { $0 += $1 })"
                    )
                } catch {
                    print(describe(error))
                }
            }
        case "fault-matrix":
            // args: retries. Each line: one fault, what the stream reported per item.
            var options = ProcessPool.Options()
            options.retries = args[0]
            try await withProcessPool(workers: 2, options: options) { pool in
                func report<Output>(_ name: String, _ results: Results<Output>) async throws {
                    var failed: [String] = []
                    var succeeded = 0
                    for try await item in results {
                        switch item.result {
                        case .success: succeeded += 1
                        case .failure(let error): failed.append("\(item.index) \(describe(error))")
                        }
                    }
                    print("\(name): ok \(succeeded) failed \(failed.count)")
                    for line in failed { print("  \(line)") }
                }
                try await report("running", pool.imap(Crash(), [0, 0, 0, 1, 0, 0, 0, 0], chunkSize: 8))
                try await report("decoding", pool.imap(DecodeCrash(), (10..<16).map(FragileInput.init), chunkSize: 3))
                try await report("encoding", pool.imap(EncodeCrash(), Array(10..<16), chunkSize: 3))
                try await report("unencodable", pool.imap(MakeUnencodable(), [1, 2], chunkSize: 2))
            }
            print("children after close \(children().count)")
        case "crash-once":
            // args: retries [items chunkSize item], by default 20 20 7. Item `item` kills its
            // worker the first time only. With 4000 1 2500, the worker dies while it holds
            // the unsent results of the one-item chunks before it.
            let (count, chunkSize, item) = args.count == 4 ? (args[1], args[2], args[3]) : (20, 20, 7)
            let marker = "/tmp/mp-fixture-crash-once-\(getpid())"
            defer { unlink(marker) }
            var options = ProcessPool.Options()
            options.retries = args[0]
            try await withProcessPool(workers: 2, options: options) { pool in
                do {
                    let out = try await pool.map(
                        CrashOnce(marker: marker, item: item), Array(0..<count), chunkSize: chunkSize)
                    print("map values=\(list(out))")
                } catch let error as MultiprocessingError {
                    print("map failed: \(describe(error))")
                    let partial = error.partialResults(as: Int.self)
                    print("partial count=\(partial?.count ?? -1) values=\(optionalList(partial ?? []))")
                }
            }
        case "timeout":
            var options = ProcessPool.Options()
            options.itemTimeout = .milliseconds(500)
            let start = now()
            try await withProcessPool(workers: 2, options: options) { pool in
                var lines: [String] = []
                for try await item in pool.imap(Busy(milliseconds: 1), [0, 1, 2, 3], chunkSize: 4) {
                    lines.append("\(item.index) \((try? item.get()).map(String.init) ?? "failed")")
                }
                for try await item in pool.imap(Busy(milliseconds: 60_000), [4], chunkSize: 1) {
                    if case .failure(let error) = item.result { lines.append("4 \(describe(error))") }
                }
                print(lines.joined(separator: "\n"))
                print("after \(try await pool.map(Square(), [5]))")
            }
            print("seconds=\(elapsed(since: start))")
        case "initializer":
            try await withProcessPool(workers: 2, options: .init(initializer: Greeter(greeting: "hello"))) { pool in
                print(try await pool.map(Greet(), [1, 2, 3]))
            }
            let start = now()
            do {
                let pool = try await ProcessPool(workers: 2, options: .init(initializer: FailingInitializer()))
                print("pool started workers=\(pool.workerCount)")
            } catch {
                print(describe(error))
            }
            print("failed seconds=\(elapsed(since: start)) children=\(children().count)")
        case "crash-at-start":
            do {
                let pool = try await ProcessPool(workers: 2)
                print("pool started workers=\(pool.workerCount)")
            } catch {
                print(describe(error))
            }
            print("children \(children().count)")
        case "crash-at-shutdown":
            try await withProcessPool(workers: 2, options: .init(initializer: AbortAtExit())) { pool in
                print(try await pool.map(Square(), [1, 2, 3]))
            }
            print("closed, children \(children().count)")
        case "recycle":
            try await withProcessPool(workers: 2, options: .init(maximumItemsPerWorker: 5)) { pool in
                let pids = try await pool.map(Pid(), Array(0..<40))
                let values = try await pool.map(Square(), Array(0..<40))
                print("distinct workers=\(Set(pids).count) values=\(list(values))")
            }
            print("children after close \(children().count)")
        case "long-map":
            // Interrupted by the test with SIGINT or SIGTERM in the middle of a long map.
            // Prints what it saw: its workers, its signal state before and after the map,
            // how the map ended, and every result it received (Busy returns its input).
            var options = ProcessPool.Options()
            options.interruptResultsPath = getenv("FIXTURE_RESULTS").map { String(cString: $0) }
            var stopped: MultiprocessingError?
            try await withProcessPool(workers: 2, options: options) { pool in
                print("children \(children().map(String.init).joined(separator: " "))")
                print(signalState(at: "start"))
                fflush(nil)
                let start = now()
                do {
                    let milliseconds = getenv("FIXTURE_ITEM_MS").flatMap { Int(String(cString: $0)) } ?? 100
                    let out = try await pool.map(Busy(milliseconds: milliseconds), Array(0..<200), chunkSize: 1)
                    print("map returned count=\(out.count) seconds=\(elapsed(since: start))")
                    print(signalState(at: "end"))
                } catch let error as MultiprocessingError {
                    stopped = error
                    print(describe(error))
                    let partial = error.partialResults(as: Int.self)
                    print(
                        "results received=\(partial?.compactMap { $0 }.count ?? -1) count=\(partial?.count ?? -1) seconds=\(elapsed(since: start)) values=\(optionalList(partial ?? []))"
                    )
                    fflush(nil)
                    if getenv("FIXTURE_LINGER") != nil { sleep(30) }  // a second SIGINT must end this at once
                }
            }
            print("closed, children \(children().count)")
            fflush(nil)
            if let signal = stopped?.interruptSignal { exit(128 + signal) }
        case "hygiene":
            // args: pools. Descriptors, threads and children after 10 pools and after `pools`.
            func counts() -> String {
                // Threads of this library (the runtime's own pool threads come and go).
                var ours = 0
                if let dir = opendir("/proc/self/task") {
                    while let entry = readdir(dir) {
                        let name = withUnsafeBytes(of: entry.pointee.d_name) {
                            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                        }
                        let comm = readFile("/proc/self/task/\(name)/comm") ?? ""
                        if ["mp-supervisor\n", "mp-signals\n", "mp-lifeline\n"].contains(comm) { ours += 1 }
                    }
                    closedir(dir)
                }
                // The library never makes timerfds; the Swift runtime's dispatch makes one per
                // timer class, lazily, when Task.sleep first needs it (here, between counts).
                let descriptors = openDescriptors().filter { !$0.hasSuffix("anon_inode:[timerfd]") }
                return "descriptors \(descriptors) library threads \(ours) children \(children().count)"
            }
            for round in 1...args[0] {
                try await withProcessPool(workers: 1) { pool in _ = try await pool.map(Square(), [round]) }
                if round == 10 {
                    try await Task.sleep(for: .milliseconds(50))
                    print("after 10: \(counts())")
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            print("after \(args[0]): \(counts())")
        case "affinity":
            // The pool's size and the CPUs its workers may run on, against this process's.
            try await withProcessPool { pool in
                _ = try await pool.map(Square(), Array(0..<100))
                let own = cpusAllowed(getpid())
                let workers = children().map(cpusAllowed)
                let node = getenv("SLURMD_NODENAME").map { String(cString: $0) } ?? "?"
                print("node \(node) mask \(own) pool \(pool.workerCount) workers \(workers.joined(separator: " "))")
            }
        case "print-then-die":
            try await withProcessPool(workers: 2) { pool in
                var failures: [String] = []
                for try await item in pool.imap(PrintThenDie(), Array(0..<100), chunkSize: 10) {
                    if case .failure(let error) = item.result { failures.append(describe(error)) }
                }
                print("failures \(failures.count): \(failures.first ?? "")")
            }
        case "progress-lines":
            // Progress as lines (what a Slurm output file gets), every 300 ms, then the report.
            var options = ProcessPool.Options()
            options.progress = .lines
            options.progressLineInterval = .milliseconds(300)
            try await withProcessPool(workers: 2, options: options) { pool in
                var failed = 0
                for try await item in pool.imap(SlowFailOn(bad: 5), Array(0..<100), chunkSize: 1) {
                    if case .failure = item.result { failed += 1 }
                }
                print("failed \(failed)")
                let report = await pool.report()
                print(
                    "report items \(report.items) failures \(report.failures) workers \(report.workers.map(\.items).reduce(0, +))"
                )
                print(report.description)
            }
        case "progress-per-call":
            // The pool shows no progress; one call asks for lines.
            try await withProcessPool(workers: 2) { pool in
                _ = try await pool.map(Square(), Array(0..<30))
                _ = try await pool.map(Square(), Array(0..<40), progress: .lines)
                _ = try await pool.starmap(Power(), [(2, 3)])
            }
            print("done")
        case "on-progress":
            let updates = Updates()
            var options = ProcessPool.Options()
            options.onProgress = { update in updates.list.withLock { $0.append(update) } }
            try await withProcessPool(workers: 2, options: options) { pool in
                _ = try await pool.map(Sleep(milliseconds: 20), Array(0..<40), chunkSize: 1)
            }
            let seen = updates.list.withLock { $0 }
            let last = seen.last
            print("updates=\(seen.count) done=\(list(seen.map(\.done)))")
            print(
                "last \(last?.call ?? "-") \(last?.done ?? -1)/\(last?.total ?? -1) finished \(last?.finished ?? false)"
            )
        case "logging":
            // The program chooses the log handler; worker lifecycle events reach it.
            LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
            try await withProcessPool(workers: 2) { pool in
                _ = try? await pool.map(Crash(), [0, 1, 0], chunkSize: 1)
                _ = try await pool.map(Square(), [1, 2])
            }
        case "readme":
            try await readmeSnippets()
        case "pool-in-worker":
            try await withProcessPool(workers: 1) { pool in
                print(try await pool.apply(NestedPool(), 0))
            }
        case "closed-pool":
            let pool = try await ProcessPool(workers: 1)
            print(try await pool.map(Square(), [1, 2]))
            await pool.close()
            do {
                print("closed pool ran \(try await pool.map(Square(), [1]))")
            } catch {
                print(describe(error))
            }
            await pool.close()
            print("children \(children().count)")
        case "leaks":
            // One pool first: the Swift runtime and Dispatch open descriptors of their own
            // (epoll, eventfd, timerfd) lazily; after that the set must not change.
            try await withProcessPool(workers: 1) { pool in _ = try await pool.map(Square(), [1]) }
            try await Task.sleep(for: .milliseconds(10))
            let before = openDescriptors()
            for _ in 0..<3 {
                try await withProcessPool(workers: 2) { pool in
                    _ = try await pool.map(Square(), Array(0..<1000))
                }
            }
            let after = openDescriptors()
            print("descriptors before=\(before.count) after=\(after.count)")
            print("before: \(before)")
            print("after: \(after)")
            print("children \(children().count)")
        case "parent-death":
            // The test kills this process with SIGKILL; the workers must go too.
            let pool = try await ProcessPool(workers: 2)
            let pids = try await pool.map(Pid(), [0, 1], chunkSize: 1)
            print("worker pids \(Set(pids).sorted().map(String.init).joined(separator: " "))")
            print("children \(children().map(String.init).joined(separator: " "))")
            fflush(nil)
            _ = try await pool.map(Spin(), [0, 1], chunkSize: 1)
        case "apply":
            try await withProcessPool(workers: 2) { pool in
                print("apply \(try await pool.apply(Square(), 12))")
            }
        case "empty":
            try await withProcessPool(workers: 2) { pool in
                print("empty \(try await pool.map(Square(), []))")
            }
        default:
            // Scenarios of later work live in files of their own (Scenarios+*.swift).
            for more in [
                runLivenessScenario, runPoolScenario, runCodingScenario, runProcessScenario, runJournalScenario,
                runTimelineScenario, runThreadsScenario, runArrayScenario, runParentScenario,
            ] {
                if try await more(scenario, args) { return }
            }
            fail("unknown scenario '\(scenario)'")
        }
    }
}
