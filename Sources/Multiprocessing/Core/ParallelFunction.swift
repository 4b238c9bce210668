/// A function that worker processes can run: a named `Codable` type whose stored
/// properties are the function's captured state.
///
/// ```swift
/// struct Scale: ParallelFunction {
///     var factor: Double                       // captured state, sent to each worker once per call
///     func callAsFunction(_ x: Double) -> Double { x * factor }
/// }
/// ```
///
/// A worker is a fresh process running the same executable; it finds your type by its
/// mangled name, so there is no registration step. The type must therefore have a name
/// a process can look up: declare it at the top level of a file or nested in another
/// type (generic types such as `Scale<Double>` work). A type declared inside a function
/// body cannot be found, and using one is a ``MultiprocessingError/Code/typeNotFound``
/// error that says so.
///
/// `callAsFunction` may be synchronous or `async`, and may throw. When it throws, that
/// item fails with a ``MultiprocessingError/Code/functionThrew`` error that carries the
/// item's index, the worker, and your error's type and description; the pool stays
/// usable. When the worker process dies while running it (a crash, `exit`, a signal),
/// the item fails with ``MultiprocessingError/Code/workerDied`` naming the cause, and the
/// worker is replaced.
public protocol ParallelFunction: Codable, Sendable {
    /// What one call takes. Sent to a worker in the library's binary encoding; arrays of
    /// fixed-width integers, floating-point numbers and SIMD vectors of them travel as raw bytes.
    associatedtype Input: Codable & Sendable
    /// What one call returns.
    associatedtype Output: Codable & Sendable

    /// Computes the output for one input, in a worker process.
    nonisolated(nonsending) func callAsFunction(_ input: Input) async throws -> Output
}

extension ParallelFunction {
    /// The name a worker looks the type up by, or `nil` when the runtime has none.
    static var workerTypeName: String? { _mangledTypeName(Self.self) }

    /// A readable name for messages.
    static var readableTypeName: String { String(reflecting: Self.self) }

    /// Checks, in this process, that a worker will be able to find this type by name.
    static func checkFindableByName() throws -> String {
        guard let name = workerTypeName, _typeByName(name) != nil else {
            throw MultiprocessingError(
                .typeNotFound,
                "the function type \(readableTypeName) cannot be found by name in a worker process: it is declared inside a function body (a local type), and local types have no name another process can look up. Move `struct \(String(describing: Self.self)): ParallelFunction` to the top level of a file, or nest it in another type."
            )
        }
        return name
    }
}
