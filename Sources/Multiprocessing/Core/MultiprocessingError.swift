/// The one error type the library throws.
///
/// An error has a ``code`` that says what kind of failure happened (test it with `==`
/// against the static members of ``Code``), a ``message`` that tells you what happened
/// and what to do about it, and, where there is one, the ``underlying`` cause (a system
/// call's errno, a decoding failure). Failures of one item also carry the item's
/// ``itemIndex``, the ``worker`` that ran it and, when your function threw, the remote
/// error's type and message (``remoteErrorType``, ``remoteErrorMessage``).
///
/// New codes may be added in any release: switch over them with a `default` case.
public struct MultiprocessingError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Storage: String, Sendable {
            case functionThrew = "function threw"
            case workerDied = "worker died"
            case bootstrapMissing = "bootstrap missing"
            case typeNotFound = "function type not found"
            case poolClosed = "pool closed"
            case insideWorker = "pool created inside a worker"
            case malformedFrame = "malformed frame"
            case frameTooLarge = "frame too large"
            case protocolMismatch = "protocol mismatch"
            case encodingFailed = "encoding failed"
            case decodingFailed = "decoding failed"
            case spawnFailed = "spawn failed"
            case systemCallFailed = "system call failed"
            case invalidArgument = "invalid argument"
            case handshakeFailed = "handshake failed"
            case cancelled = "cancelled"
            case unexpected = "unexpected error"
            case initializerFailed = "initializer failed"
            case timedOut = "timed out"
            case interrupted = "interrupted"
            case authenticationFailed = "authentication failed"
            case nodesUnavailable = "nodes unavailable"
        }
        let storage: Storage

        /// The function threw an error while running one item; the pool is still usable.
        public static let functionThrew = Code(storage: .functionThrew)
        /// A worker process exited or was killed while it held work.
        public static let workerDied = Code(storage: .workerDied)
        /// The program never called `Multiprocessing.bootstrap()`.
        public static let bootstrapMissing = Code(storage: .bootstrapMissing)
        /// A worker could not find the function's type by its mangled name.
        public static let typeNotFound = Code(storage: .typeNotFound)
        /// The pool was used after it was closed.
        public static let poolClosed = Code(storage: .poolClosed)
        /// A pool was created inside a worker process.
        public static let insideWorker = Code(storage: .insideWorker)
        /// Bytes on a worker connection were not a valid frame.
        public static let malformedFrame = Code(storage: .malformedFrame)
        /// A frame was larger than the connection's limit.
        public static let frameTooLarge = Code(storage: .frameTooLarge)
        /// The two ends speak different protocol versions or are different builds.
        public static let protocolMismatch = Code(storage: .protocolMismatch)
        /// A value could not be encoded.
        public static let encodingFailed = Code(storage: .encodingFailed)
        /// Bytes could not be decoded into the expected type.
        public static let decodingFailed = Code(storage: .decodingFailed)
        /// A worker process could not be started.
        public static let spawnFailed = Code(storage: .spawnFailed)
        /// A system call failed; ``MultiprocessingError/underlying`` holds the errno.
        public static let systemCallFailed = Code(storage: .systemCallFailed)
        /// An argument or environment value was invalid.
        public static let invalidArgument = Code(storage: .invalidArgument)
        /// A worker did not complete the start-up handshake.
        public static let handshakeFailed = Code(storage: .handshakeFailed)
        /// The call was cancelled (its Swift task was cancelled, or an earlier item failed).
        public static let cancelled = Code(storage: .cancelled)

        /// The pool's ``WorkerInitializer`` threw, or its worker died in it.
        public static let initializerFailed = Code(storage: .initializerFailed)
        /// An item ran longer than the pool's per-item timeout; its worker was stopped.
        public static let timedOut = Code(storage: .timedOut)
        /// The program received SIGINT or SIGTERM; the pool stopped its work.
        public static let interrupted = Code(storage: .interrupted)
        /// A TCP connection of a multi-node pool did not prove it knows the pool's secret
        /// (or the coordinator did not); the connection was closed and nothing ran for it.
        public static let authenticationFailed = Code(storage: .authenticationFailed)
        /// A multi-node pool could not start its worker hosts on the other nodes (the
        /// `srun` step failed: the message quotes Slurm), or every node was lost.
        public static let nodesUnavailable = Code(storage: .nodesUnavailable)
        /// An error the library did not expect; the message and ``MultiprocessingError/underlying`` say more.
        public static let unexpected = Code(storage: .unexpected)

        /// The code's name in words, e.g. `worker died`.
        public var description: String { storage.rawValue }

        init(storage: Storage) { self.storage = storage }

        /// The code whose ``description`` is `name` (how a worker's error crosses the wire);
        /// ``unexpected`` for a name this build does not know.
        init(named name: String) {
            storage = Storage(rawValue: name) ?? .unexpected
        }
    }

    /// Identifies a worker process in error messages.
    public struct WorkerIdentity: Hashable, Sendable, CustomStringConvertible {
        /// The pool-local number of the worker slot (0-based). A respawned worker keeps its slot.
        public let slot: Int
        /// The worker's process id.
        public let pid: Int32
        /// The host the worker runs on.
        public let host: String

        /// Creates a worker identity.
        public init(slot: Int, pid: Int32, host: String) {
            self.slot = slot
            self.pid = pid
            self.host = host
        }

        /// `worker <slot> (pid <pid> on <host>)`.
        public var description: String { "worker \(slot) (pid \(pid) on \(host))" }
    }

    /// What kind of failure this is.
    public let code: Code
    /// What happened and what to do about it, in words meant for the user.
    public let message: String
    /// The index (0-based, in input order) of the item that failed, when one item failed.
    public let itemIndex: Int?
    /// The worker involved, when a worker was involved.
    public let worker: WorkerIdentity?
    /// The Swift type name of the error your function threw in the worker.
    public let remoteErrorType: String?
    /// The description of the error your function threw in the worker.
    public let remoteErrorMessage: String?
    /// How the worker process ended, for ``Code/workerDied`` and start-up failures.
    public let termination: ProcessTermination?
    /// The signal the program received, for ``Code/interrupted`` (SIGINT 2, SIGTERM 15):
    /// a program that stops because of it conventionally exits with status 128 + signal.
    public let interruptSignal: Int32?
    /// The underlying cause (for example a ``SystemCallError``), when there is one.
    public let underlying: (any Error & Sendable)?
    /// For ``Code/interrupted`` with ``ProcessPool/Options/interruptResultsPath`` set: how
    /// many of the results the call had received are not in that file. Those JSON cannot
    /// hold (a NaN or infinite `Double`) are counted here and left out; when the file
    /// could not be written at all, every received result is counted. `nil` for other
    /// errors and when no results file is set. All of them are still in
    /// ``partialResults(as:)``.
    public let unwrittenResults: Int?
    /// Results a call had already received when it failed, type-erased; read them with
    /// ``partialResults(as:)``.
    let partialResultsStorage: (any Sendable)?

    /// Creates an error. Only the library makes these: its codes and messages are its own
    /// (see the README's "API changes").
    package init(
        _ code: Code,
        _ message: String,
        itemIndex: Int? = nil,
        worker: WorkerIdentity? = nil,
        remoteErrorType: String? = nil,
        remoteErrorMessage: String? = nil,
        termination: ProcessTermination? = nil,
        interruptSignal: Int32? = nil,
        underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.itemIndex = itemIndex
        self.worker = worker
        self.remoteErrorType = remoteErrorType
        self.remoteErrorMessage = remoteErrorMessage
        self.termination = termination
        self.interruptSignal = interruptSignal
        self.underlying = underlying
        self.unwrittenResults = nil
        self.partialResultsStorage = nil
    }

    /// The error itself when it is ours, else ours wrapping it.
    static func from(_ error: any Error) -> MultiprocessingError {
        if let error = error as? MultiprocessingError { return error }
        return MultiprocessingError(.unexpected, String(describing: error), underlying: error)
    }

    init(copying other: MultiprocessingError, partialResults: (any Sendable)?, unwrittenResults: Int? = nil) {
        self.code = other.code
        self.message = other.message
        self.itemIndex = other.itemIndex
        self.worker = other.worker
        self.remoteErrorType = other.remoteErrorType
        self.remoteErrorMessage = other.remoteErrorMessage
        self.termination = other.termination
        self.interruptSignal = other.interruptSignal
        self.underlying = other.underlying
        self.unwrittenResults = unwrittenResults ?? other.unwrittenResults
        self.partialResultsStorage = partialResults
    }

    /// The results a `map` had already received when it failed: one element per input,
    /// `nil` where no result had arrived (or where the item failed).
    ///
    /// - Parameter type: the function's `Output` type.
    /// - Returns: the partial results, or `nil` when this error did not come from a call
    ///   that collects results or `type` is not its output type.
    public func partialResults<Output>(as type: Output.Type = Output.self) -> [Output?]? {
        // Not `as? [Output?]`: a dynamic cast converts element by element, and `nil`
        // converts to any optional type, so results that are all `nil` would pass as any type.
        guard let storage = partialResultsStorage, Swift.type(of: storage) == [Output?].self else { return nil }
        return storage as? [Output?]
    }

    /// The code, the message and the underlying cause, on one line.
    public var description: String {
        var text = "MultiprocessingError.\(code): \(message)"
        if let underlying { text += " (underlying: \(underlying))" }
        return text
    }
}

/// The user-facing text of any error: the message of ours, the description of others.
func describe(_ error: any Error) -> String {
    (error as? MultiprocessingError)?.message ?? String(describing: error)
}
