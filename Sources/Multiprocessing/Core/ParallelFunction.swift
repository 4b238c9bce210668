/// A function that worker processes can run: a named `Codable` type whose stored
/// properties are the function's captured state, with a synchronous `callAsFunction`.
///
/// ```swift
/// struct Scale: ParallelFunction {
///     var factor: Double                       // captured state, sent to each worker once per call
///     func callAsFunction(_ x: Double) -> Double { x * factor }
/// }
/// ```
///
/// For a function that must `await`, conform to ``AsyncParallelFunction`` instead; the pool
/// takes either. The synchronous form is the fast one: a worker calls it in a plain loop,
/// specialized for your type, with no per-item async overhead (tens of nanoseconds here).
///
/// A worker is a fresh process running the same executable; it finds your type by its
/// mangled name, so there is no registration step. The type must therefore have a name
/// a process can look up: declare it at the top level of a file or nested in another
/// type (generic types such as `Scale<Double>` work), and not `private` or `fileprivate`.
/// A type declared inside a function body, or a private one, cannot be found, and using
/// one is a ``MultiprocessingError/Code/typeNotFound`` error that says which and how to
/// fix it.
///
/// `callAsFunction` may throw. When it throws, that item fails with a
/// ``MultiprocessingError/Code/functionThrew`` error that carries the item's index, the
/// worker, and your error's type and description; the pool stays usable. When the worker
/// process dies while running it (a crash, `exit`, a signal), the item fails with
/// ``MultiprocessingError/Code/workerDied`` naming the cause, and the worker is replaced.
public protocol ParallelFunction: WorkerFunction {
    /// What one call takes (see ``WorkerFunction/Input``).
    associatedtype Input
    /// What one call returns (see ``WorkerFunction/Output``).
    associatedtype Output

    /// Computes the output for one input, in a worker process.
    func callAsFunction(_ input: Input) throws -> Output
}

/// A function that worker processes can run, like ``ParallelFunction``, whose
/// `callAsFunction` is `async` (it may await I/O, sleep, or use a task group).
///
/// It runs on the worker's main thread; each item costs an async call more than a
/// synchronous ``ParallelFunction``. Failures are reported as for ``ParallelFunction``.
public protocol AsyncParallelFunction: WorkerFunction {
    /// What one call takes (see ``WorkerFunction/Input``).
    associatedtype Input
    /// What one call returns (see ``WorkerFunction/Output``).
    associatedtype Output

    /// Computes the output for one input, in a worker process.
    func callAsFunction(_ input: Input) async throws -> Output
}

/// What a pool runs: a ``ParallelFunction`` or an ``AsyncParallelFunction``. Conform to
/// one of those two; this protocol only names what they share (a `Codable` value with
/// `Codable & Sendable` input and output).
public protocol WorkerFunction: Codable, Sendable {
    /// What one call takes. Sent to a worker in the library's binary encoding; arrays of
    /// fixed-width integers, floating-point numbers and SIMD vectors of them, and Foundation's
    /// `Data`, travel as raw bytes.
    associatedtype Input: Codable & Sendable
    /// What one call returns.
    associatedtype Output: Codable & Sendable

    /// Not API: runs offsets `run` of a chunk in a worker; `inputs` holds exactly the run's
    /// inputs (`inputs[0]` is offset `run.lowerBound`). Implemented by
    /// ``ParallelFunction`` and ``AsyncParallelFunction``; it is a requirement so that the
    /// worker reaches it through your type's witness table, where it is specialized for
    /// your type.
    nonisolated(nonsending) func _runChunk(_ inputs: [Input], run: Range<Int>, context: _ChunkContext) async
        -> _ChunkOutcome<Output>

    /// Not API: the same without suspending, for a ``ParallelFunction`` (the worker then
    /// runs the chunk with no task at all); `nil` for an ``AsyncParallelFunction``.
    func _runChunkSynchronously(_ inputs: [Input], run: Range<Int>, context: _ChunkContext) -> _ChunkOutcome<Output>?
}

/// Not API: what a worker passes to ``ParallelFunction/_runChunk(_:run:context:)``.
/// (What it does with it, `noteItem`, is in `Workers/FunctionRunner.swift`, next to the
/// progress page it writes.)
public struct _ChunkContext: @unchecked Sendable {
    /// The worker's progress page (see `ProgressPage`): a raw pointer, so that noting an
    /// item costs two stores and no reference counting.
    @usableFromInline let progressWords: UnsafeMutablePointer<UInt64>?
    @usableFromInline let timesItems: Bool

    init(progressWords: UnsafeMutablePointer<UInt64>?, timesItems: Bool) {
        self.progressWords = progressWords
        self.timesItems = timesItems
    }
}

/// Not API: the outputs of a chunk's items, and the failures, in order.
public struct _ChunkOutcome<Output>: Sendable where Output: Sendable {
    /// Outputs of the items that succeeded, in order.
    public var outputs: [Output]
    /// Items that threw: offset, error type, error description.
    public var failures: [_ItemFailure]

    @inlinable
    init(outputs: [Output], failures: [_ItemFailure]) {
        self.outputs = outputs
        self.failures = failures
    }
}

/// Not API: one item whose function threw.
public struct _ItemFailure: Sendable {
    /// The item's offset in the chunk's inputs.
    public let offset: Int
    /// The thrown error's type name.
    public let type: String
    /// The thrown error's description.
    public let message: String
    /// The code of a ``MultiprocessingError`` the function threw (a pool created inside a
    /// worker, for example): it reaches the parent with its own code, not as `functionThrew`.
    public let code: String?

    @inlinable
    init(offset: Int, error: any Error) {
        self.offset = offset
        if let error = error as? MultiprocessingError {
            code = error.code.description
            type = "MultiprocessingError"
            message = error.message
        } else {
            code = nil
            type = String(reflecting: Swift.type(of: error))
            message = String(describing: error)
        }
    }
}

extension WorkerFunction {
    /// The name a worker looks the type up by, or `nil` when the runtime has none.
    static var workerTypeName: String? { _mangledTypeName(Self.self) }

    /// Checks, in this process, that a worker will be able to find this type by name.
    static func checkFindableByName() throws -> String {
        guard let name = workerTypeName, _typeByName(name) != nil else {
            let type = String(describing: Self.self)
            throw MultiprocessingError(
                .typeNotFound,
                "the function type \(type) cannot be found by name in a worker process: "
                    + UnfindableType(mangledName: workerTypeName).explanation(declaration: "struct \(type)")
            )
        }
        return name
    }
}

/// Why the runtime cannot look a type up by its mangled name, told from the name itself.
///
/// `_mangledTypeName` writes each context that has no name of its own as a symbolic
/// reference, `<length>$<address>yXZ` (an anonymous context). A `private` or `fileprivate`
/// type sits in one such context (its private discriminator); a type declared in a
/// function body sits in two in a row (the function's and the type's own). Checked with
/// Swift 6.3 in debug and release builds: private and fileprivate types at the top level,
/// nested in a type and in a private type, and local types in functions, methods and
/// closures; a private type used as a generic argument shows the same way.
enum UnfindableType: Equatable {
    /// Declared inside a function body (or a closure).
    case local
    /// Declared `private` or `fileprivate`.
    case `private`
    /// Neither: a different build, or a type this check does not know.
    case unknown

    /// Classifies a mangled name that `_typeByName` did not resolve.
    init(mangledName: String?) {
        let runs = mangledName.map(Self.anonymousContextRuns) ?? []
        if runs.contains(where: { $0 >= 2 }) {
            self = .local
        } else if !runs.isEmpty {
            self = .private
        } else {
            self = .unknown
        }
    }

    /// The lengths of the runs of consecutive anonymous contexts in a mangled name.
    private static func anonymousContextRuns(_ name: String) -> [Int] {
        let bytes = Array(name.utf8)
        var runs: [Int] = []
        var run = 0
        var index = 0
        while index < bytes.count {
            if let end = anonymousContextEnd(bytes, from: index) {
                run += 1
                index = end
            } else {
                if run > 0 { runs.append(run) }
                run = 0
                index += 1
            }
        }
        if run > 0 { runs.append(run) }
        return runs
    }

    /// Where an anonymous context `<digits>$<hex>yXZ` that starts at `start` ends, or nil.
    private static func anonymousContextEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        guard index > start, index < bytes.count, bytes[index] == UInt8(ascii: "$") else { return nil }
        index += 1
        let hexStart = index
        while index < bytes.count,
            (bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9"))
                || (bytes[index] >= UInt8(ascii: "a") && bytes[index] <= UInt8(ascii: "f"))
        {
            index += 1
        }
        guard index > hexStart, index + 3 <= bytes.count, bytes[index..<index + 3].elementsEqual("yXZ".utf8) else {
            return nil
        }
        return index + 3
    }

    /// What the error says after "cannot be found by name in a worker process: ", for a
    /// type declared as `declaration` (e.g. "struct Scale"), or for "the type" when nil.
    func explanation(declaration: String?) -> String {
        let subject = declaration.map { "`\($0)`" } ?? "the type"
        switch self {
        case .local:
            return
                "it is declared inside a function body (a local type), and local types have no name another process can look up. Move \(subject) to the top level of a file, or nest it in another type."
        case .private:
            return
                "it is declared `private` or `fileprivate` (or is nested in, or has as a generic argument, a type that is), and the Swift runtime cannot look private types up by name, not even in the same process. Make it internal: remove `private`/`fileprivate` from \(subject) and from the types around it."
        case .unknown:
            return
                "the worker is a different build of the program, or the type is declared inside a function body or `private`. Declare \(subject) at the top level of a file, or nest it in another type, without `private` or `fileprivate`."
        }
    }
}
