import CMultiprocessingShim

/// Runs chunks of one call in a worker: the decoded function value, and the code that
/// turns a task frame into a result frame. One per call per worker.
protocol ChunkRunner: Sendable {
    /// Runs the task's items and returns the result frame (never throws: failures of
    /// items, or of decoding the inputs, are reported inside the frame).
    nonisolated(nonsending) func execute(task: Message.Task, payload: [UInt8], inputsOffset: Int) async -> ChunkReply

    /// The same for a synchronous function, with no task; `nil` when the function is
    /// `async` (then ``execute(task:payload:inputsOffset:)`` runs it).
    func executeSynchronously(task: Message.Task, payload: [UInt8], inputsOffset: Int) -> ChunkReply?
}

/// A chunk's result frame, and how long its items ran (0 when they did not run).
struct ChunkReply {
    var frame: [UInt8]
    var computeNanos: UInt64
}

/// What a worker needs to know to run chunks, beyond the function.
struct RunnerContext: Sendable {
    let maximumPayload: Int
    let progress: ProgressPage?
    /// Whether to note each item's start time (only when items have a timeout).
    let timesItems: Bool
}

/// Looks up a function type by its mangled name and decodes its value (worker side).
func makeChunkRunner(typeName: String, functionBytes: UnsafeRawBufferPointer, context: RunnerContext) throws
    -> any ChunkRunner
{
    guard let type = _typeByName(typeName) else {
        throw MultiprocessingError(
            .typeNotFound,
            "this worker cannot find the function type with mangled name \(typeName): "
                + UnfindableType(mangledName: typeName).explanation(declaration: nil)
        )
    }
    guard let functionType = type as? any WorkerFunction.Type else {
        throw MultiprocessingError(
            .typeNotFound,
            "the type \(String(reflecting: type)) does not conform to ParallelFunction or AsyncParallelFunction in this worker"
        )
    }
    return try makeRunner(functionType, functionBytes, context)
}

private func makeRunner<F: WorkerFunction>(_ type: F.Type, _ bytes: UnsafeRawBufferPointer, _ context: RunnerContext)
    throws -> any ChunkRunner
{
    var reader = ByteReader(bytes)
    let function = try BinaryCodec.decode(F.self, from: &reader)
    return FunctionRunner(function: function, context: context)
}

struct FunctionRunner<F: WorkerFunction>: ChunkRunner {
    let function: F
    let context: RunnerContext
    /// Whether `F` is a ``ParallelFunction`` (asked once, not for every chunk).
    let isSynchronous = F.self is any ParallelFunction.Type

    nonisolated(nonsending) func execute(task: Message.Task, payload: [UInt8], inputsOffset: Int) async -> ChunkReply {
        switch start(task, payload, inputsOffset) {
        case .failure(let failed):
            return ChunkReply(frame: failed.bytes, computeNanos: 0)
        case .success(let inputs):
            let began = Platform.monotonicNanos()
            let outcome = await function._runChunk(inputs, run: task.runStart..<task.runEnd, context: itemContext)
            return finish(task, outcome, since: began)
        }
    }

    func executeSynchronously(task: Message.Task, payload: [UInt8], inputsOffset: Int) -> ChunkReply? {
        guard isSynchronous else { return nil }
        switch start(task, payload, inputsOffset) {
        case .failure(let failed):
            return ChunkReply(frame: failed.bytes, computeNanos: 0)
        case .success(let inputs):
            let began = Platform.monotonicNanos()
            // Never nil: a ParallelFunction always has its synchronous chunk loop.
            let outcome = function._runChunkSynchronously(
                inputs, run: task.runStart..<task.runEnd, context: itemContext)!
            return finish(task, outcome, since: began)
        }
    }

    private var itemContext: _ChunkContext {
        _ChunkContext(progress: context.progress, timesItems: context.timesItems)
    }

    /// A result frame that fails the whole task (its inputs could not be decoded).
    struct FailedTask: Error {
        let bytes: [UInt8]
    }

    /// Notes the chunk in the progress page and decodes its inputs. The page then says
    /// `running`, or `idle` again when the inputs could not be decoded.
    private func start(_ task: Message.Task, _ payload: [UInt8], _ inputsOffset: Int) -> Result<
        [F.Input], FailedTask
    > {
        context.progress?.begin(chunkID: task.chunkID)
        let inputs = decodeInputs(task, payload, inputsOffset)
        if case .success = inputs {
            context.progress?.set(.running)
        } else {
            context.progress?.set(.idle)
        }
        return inputs
    }

    /// Encodes the outcome of a chunk whose items started at `began`; the page is idle after.
    private func finish(_ task: Message.Task, _ outcome: _ChunkOutcome<F.Output>, since began: UInt64)
        -> ChunkReply
    {
        let elapsed = Platform.monotonicNanos() &- began
        let frame = resultFrame(task, outcome, elapsed: elapsed)
        context.progress?.set(.idle)
        return ChunkReply(frame: frame, computeNanos: elapsed)
    }

    private func decodeInputs(_ task: Message.Task, _ payload: [UInt8], _ inputsOffset: Int) -> Result<
        [F.Input], FailedTask
    > {
        do {
            return .success(
                try payload.withUnsafeBytes { raw throws in
                    var reader = ByteReader(raw, offset: inputsOffset)
                    let values = try BinaryCodec.decode([F.Input].self, from: &reader, asItems: true)
                    guard reader.isAtEnd, values.count == task.count else {
                        throw MultiprocessingError(
                            .malformedFrame,
                            "a task frame for \(task.count) items held \(values.count) inputs and \(reader.remaining) stray bytes"
                        )
                    }
                    return values
                })
        } catch {
            return .failure(
                FailedTask(
                    bytes: Self.failAll(
                        task, type: "MultiprocessingError(decodingFailed)",
                        message:
                            "the worker could not decode the inputs (\(String(reflecting: F.Input.self))): \(describe(error))"
                    )))
        }
    }

    /// The result frame of a chunk that ran.
    private func resultFrame(_ task: Message.Task, _ outcome: _ChunkOutcome<F.Output>, elapsed: UInt64) -> [UInt8] {
        let outputs = outcome.outputs
        let failures = outcome.failures
        context.progress?.set(.encoding)

        if failures.isEmpty,
            let frame = try? Frame.encode(
                .result,
                payload: { w throws in
                    Message.Result(
                        callID: task.callID, chunkID: task.chunkID, computeNanos: elapsed,
                        status: Message.Result.allSucceeded
                    ).write(to: &w)
                    try BinaryCodec.encode(outputs, into: &w, asItems: true)
                })
        {
            if frame.count - Frame.headerSize <= context.maximumPayload { return frame }
            return Self.failAll(
                task, type: "MultiprocessingError(frameTooLarge)",
                message:
                    "the results of items \(task.itemRange) encode to \(frame.count) bytes, above the frame limit of \(context.maximumPayload) bytes: return smaller results, use a smaller chunkSize, or raise ProcessPool.Options.maximumFrameBytes"
            )
        }
        return Self.perItemFrame(
            task, elapsed: elapsed, outputs: outputs, failures: failures, maximumPayload: context.maximumPayload)
    }

    /// A result frame with one outcome per item (used when any item failed, or an output
    /// could not be encoded: then that item fails, naming the type).
    private static func perItemFrame(
        _ task: Message.Task, elapsed: UInt64, outputs: [F.Output],
        failures: [_ItemFailure], maximumPayload: Int
    ) -> [UInt8] {
        // Encode every outcome first: the header counts the failures, encoding ones included.
        var outcomes: [(succeeded: Bool, bytes: [UInt8], type: String, message: String)] = []
        outcomes.reserveCapacity(task.runEnd - task.runStart)
        var nextFailure = 0
        var nextOutput = 0
        for offset in task.runStart..<task.runEnd {
            if nextFailure < failures.count, failures[nextFailure].offset == offset {
                outcomes.append((false, [], failures[nextFailure].type, failures[nextFailure].message))
                nextFailure += 1
                continue
            }
            var item = ByteWriter()
            do {
                try BinaryCodec.encode(outputs[nextOutput], into: &item)
                outcomes.append((true, item.bytes, "", ""))
            } catch {
                outcomes.append(
                    (
                        false, [], "MultiprocessingError(encodingFailed)",
                        "the worker could not encode the result (\(String(reflecting: F.Output.self))): \(describe(error))"
                    ))
            }
            nextOutput += 1
        }
        let header = Message.Result(
            callID: task.callID, chunkID: task.chunkID, computeNanos: elapsed, status: Message.Result.perItem,
            failedCount: outcomes.filter { !$0.succeeded }.count)
        let frame = try? Frame.encode(.result) { w in
            header.write(to: &w)
            for outcome in outcomes {
                if outcome.succeeded {
                    w.write(Message.Result.itemSucceeded)
                    w.write(contentsOf: outcome.bytes)
                } else {
                    w.write(Message.Result.itemFailed)
                    w.write(string: outcome.type)
                    w.write(string: outcome.message)
                }
            }
        }
        if let frame, frame.count - Frame.headerSize <= maximumPayload { return frame }
        return failAll(
            task, type: "MultiprocessingError(frameTooLarge)",
            message: "the results of items \(task.itemRange) are above the frame limit of \(maximumPayload) bytes")
    }

    /// A result frame in which every item of the task failed with the same error.
    static func failAll(_ task: Message.Task, type: String, message: String) -> [UInt8] {
        let header = Message.Result(
            callID: task.callID, chunkID: task.chunkID, computeNanos: 0, status: Message.Result.perItem,
            failedCount: task.runEnd - task.runStart)
        // Encoding strings cannot fail.
        return
            (try? Frame.encode(.result) { w in
                header.write(to: &w)
                for _ in task.runStart..<task.runEnd {
                    w.write(Message.Result.itemFailed)
                    w.write(string: type)
                    w.write(string: message)
                }
            }) ?? []
    }
}

/// The user-facing text of an error: its message for ours, its description otherwise.
func describe(_ error: any Error) -> String {
    (error as? MultiprocessingError)?.message ?? String(describing: error)
}
