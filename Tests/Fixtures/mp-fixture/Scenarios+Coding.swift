import FoundationEssentials
import Multiprocessing

/// A function type the runtime cannot look up by name: it is `private`.
private struct PrivateSquare: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

/// The same, `fileprivate`.
fileprivate struct FilePrivateSquare: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

/// An initializer type that is `private`.
private struct PrivateInitializer: WorkerInitializer {
    func initialize() async throws {}
}

/// Returns its input: a round trip of a value through a worker.
struct Echo<Value: Codable & Sendable>: ParallelFunction {
    func callAsFunction(_ value: Value) -> Value { value }
}

/// `count` bytes of a fixed pseudo-random pattern.
func patternBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runCodingScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        case "private-types":
            // One line per refused type (the error), then a map that still works.
            try await withProcessPool(workers: 1) { pool in
                do {
                    print("private: accepted \(try await pool.map(PrivateSquare(), [2]))")
                } catch {
                    print("private: \(describe(error))")
                }
                do {
                    print("fileprivate: accepted \(try await pool.map(FilePrivateSquare(), [2]))")
                } catch {
                    print("fileprivate: \(describe(error))")
                }
                print("after \(try await pool.map(Square(), [3]))")
            }
            do {
                let pool = try await ProcessPool(workers: 1, options: .init(initializer: PrivateInitializer()))
                await pool.close()
                print("initializer: accepted")
            } catch {
                print("initializer: \(describe(error))")
            }
        case "data":
            // Data values of several shapes through a worker and back: whether each came back
            // equal, then the seconds of a round trip of `args[0]` MB as Data and as [UInt8]
            // (best of `args[1]`).
            let large = Data(patternBytes(args[0] * 1_000_000))
            let slice = large[1_000..<2_000_000]
            try await withProcessPool(workers: 2) { pool in
                let inputs = [Data(), Data([42]), slice, large]
                let outputs = try await pool.map(Echo<Data>(), inputs, chunkSize: 1)
                // Digests (FNV-1a) of what was sent and what came back, and the byte counts.
                print(
                    "data counts \(outputs.map(\.count)) sent=\(list(inputs.map { digest($0) })) returned=\(list(outputs.map { digest($0) }))"
                )
                let blob = Blob(name: "b", payload: slice, extra: nil)
                let back = try await pool.apply(Echo<Blob>(), blob)
                print(
                    "blob sent=\(blob.name),\(digest(blob.payload)),\(blob.extra.map { digest($0) } ?? "nil") returned=\(back.name),\(digest(back.payload)),\(back.extra.map { digest($0) } ?? "nil")"
                )
                var returned: Set<String> = []
                var best = (data: Double.infinity, bytes: Double.infinity)
                let bytes = [UInt8](large)
                for _ in 0..<max(1, args[1]) {
                    var start = ContinuousClock.now
                    let data = try await pool.apply(Echo<Data>(), large)
                    best.data = min(best.data, seconds(since: start))
                    start = ContinuousClock.now
                    let array = try await pool.apply(Echo<[UInt8]>(), bytes)
                    best.bytes = min(best.bytes, seconds(since: start))
                    returned.formUnion(["data:\(digest(data))", "bytes:\(digest(array))"])
                }
                print("round trips sent=\(digest(large)) returned=\(list(returned.sorted()))")
                print("seconds data \(best.data) bytes \(best.bytes)")
            }
        case "deep":
            // args: links. A chain of that many links (links + 1 levels) as an input, as a
            // result, and both (echoed); one line each: the links that arrived, or the error.
            let links = args[0]
            try await withProcessPool(workers: 1) { pool in
                func report(_ label: String, _ body: () async throws -> Int) async {
                    do {
                        print("\(label) \(try await body())")
                    } catch {
                        print("\(label) \(describe(error))")
                    }
                }
                await report("input") { try await pool.map(CountLinks(), [Chain(links: links)])[0] }
                await report("result") { try await pool.map(MakeChain(), [links])[0].links }
                await report("echo") { try await pool.apply(Echo<Chain>(), Chain(links: links)).links }
                await report("after") { try await pool.map(CountLinks(), [Chain(links: 3)])[0] }
            }
        default: return false
        }
        return true
    }

    /// Seconds since `start`.
    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
}

/// A struct with `Data` fields.
struct Blob: Codable, Equatable, Sendable {
    var name: String
    var payload: Data
    var extra: Data?
}

/// A value `links + 1` levels deep: each `Chain` value is one level of the codec.
indirect enum Chain: Codable, Equatable, Sendable {
    case link(Chain)
    case end

    /// A chain of `links` links.
    init(links: Int) {
        var chain = Chain.end
        for _ in 0..<links { chain = .link(chain) }
        self = chain
    }

    /// The number of links.
    var links: Int {
        var count = 0
        var chain = self
        while case .link(let next) = chain {
            count += 1
            chain = next
        }
        return count
    }
}

/// Builds a chain of the given number of links in the worker (a deep result).
struct MakeChain: ParallelFunction {
    func callAsFunction(_ links: Int) -> Chain { Chain(links: links) }
}

/// Counts the links of a chain in the worker (a deep input).
struct CountLinks: ParallelFunction {
    func callAsFunction(_ chain: Chain) -> Int { chain.links }
}
