// The initialize message (`Frame.Kind.initialize`): a `WorkerInitializer`'s mangled type
// name (string), then its value. The parent writes it once per pool (and each worker gets
// it after hello); the worker looks the type up and decodes the value before it says ready.

/// Worker side: looks up the initializer type named in an initialize message and decodes
/// its value (`bytes`, after the name).
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
