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

func makeInitializer(typeName: String, bytes: UnsafeRawBufferPointer) throws -> InitializerRunner {
    guard let type = _typeByName(typeName) as? any WorkerInitializer.Type else {
        throw MultiprocessingError(
            .typeNotFound,
            "this worker cannot find the initializer type with mangled name \(typeName): "
                + UnfindableType(mangledName: typeName).explanation(declaration: nil)
        )
    }
    return try decodeInitializer(type, bytes)
}

private func decodeInitializer<I: WorkerInitializer>(_ type: I.Type, _ bytes: UnsafeRawBufferPointer) throws
    -> InitializerRunner
{
    var reader = ByteReader(bytes)
    let initializer = try BinaryCodec.decode(I.self, from: &reader)
    return InitializerRunner(body: { try await initializer.initialize() }, typeName: String(reflecting: I.self))
}

extension WorkerInitializer {
    /// The initialize frame for this value (parent side).
    func initializeFrame() throws -> [UInt8] {
        guard let name = _mangledTypeName(Self.self), _typeByName(name) != nil else {
            let type = String(describing: Self.self)
            throw MultiprocessingError(
                .typeNotFound,
                "the initializer type \(type) cannot be found by name in a worker process: "
                    + UnfindableType(mangledName: _mangledTypeName(Self.self)).explanation(
                        declaration: "struct \(type)")
            )
        }
        return try Frame.encode(.initialize) { w throws in
            w.write(string: name)
            try BinaryCodec.encode(self, into: &w)
        }
    }
}
