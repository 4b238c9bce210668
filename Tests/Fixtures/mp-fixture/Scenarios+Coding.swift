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
        default: return false
        }
        return true
    }
}
