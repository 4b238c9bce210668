import Multiprocessing

/// The function the workers run: a named type, so a fresh worker process can find it.
struct Square: ParallelFunction {
    func callAsFunction(_ x: Int) -> Int { x * x }
}

@main
struct Squares {
    static func main() async throws {
        Multiprocessing.bootstrap()  // a worker process never returns from here
        try await withProcessPool { pool in  // sized from the Slurm allocation by default
            print(try await pool.map(Square(), [1, 2, 3, 4, 5, 6, 7, 8]))
        }
    }
}
