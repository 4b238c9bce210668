/// Work that runs once in each worker process before its first item (Python's
/// `Pool(initializer=...)`): open a file, load a model, fill a cache in a global.
///
/// Like a ``ParallelFunction``, it is a named `Codable` type whose stored properties are
/// its arguments; it is sent to each worker as it starts (and to every replacement).
///
/// When `initialize()` throws (or the worker dies in it), that worker never takes work:
/// pool creation fails with ``MultiprocessingError/Code/initializerFailed``, naming your
/// error once. A replacement worker whose initializer fails is retried a bounded number
/// of times, then its slot is given up (and, when no worker is left, every pending call
/// fails with that error) — never an endless respawn loop.
public protocol WorkerInitializer: Codable, Sendable {
    /// Prepares this worker process.
    func initialize() async throws
}

/// Worker side: runs an initializer, returning its failure.
struct InitializerRunner: Sendable {
    let body: @Sendable () async throws -> Void
    let typeName: String

    func run() async -> MultiprocessingError? {
        do {
            try await body()
            return nil
        } catch {
            return MultiprocessingError(
                .initializerFailed,
                "the worker initializer \(typeName) threw \(String(reflecting: type(of: error))): \(error)",
                remoteErrorType: String(reflecting: type(of: error)), remoteErrorMessage: String(describing: error))
        }
    }
}
