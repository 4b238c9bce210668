/// The body of a result frame, after its ``Message/Result`` header: how a worker writes a
/// chunk's outcomes and how the pool reads them back. The only code that knows this layout.
///
/// ```
/// status 0 (allSucceeded)  the run's outputs as one [Output] value (rest); only for outputs
///                          that travel as raw bytes, when every item succeeded
/// status 1 (perItem)       the run's outcomes as ``ItemizedValues``: per item a value, a
///                          thrown error's type and description, or a library error's code
///                          and message
/// ```
///
/// The header's failed count (fixed width, last in the header) is patched once the items
/// are written; with chunk times, the end time just before it is written last of all
/// (``ResultFrame/stampEnd(_:)``).
enum ResultBody {
    /// The result frame of a run whose items all succeeded, its outputs written as raw bytes
    /// (status 0); `nil` when they cannot be encoded or the frame's payload would be larger
    /// than `maximumPayload` (then write the items one by one, ``ItemizedWriter``).
    static func allSucceeded<Output: Encodable>(
        _ outputs: [Output], task: Message.Task, computeNanos: UInt64, times: Message.Result.Times?,
        maximumPayload: Int
    ) -> ResultFrame? {
        let header = Message.Result(
            callID: task.callID, chunkID: task.chunkID, computeNanos: computeNanos, status: Message.Result.allSucceeded,
            times: times)
        var endAt = 0
        guard
            let frame = try? Frame.encode(
                .result,
                payload: { w throws in
                    header.write(to: &w)
                    endAt = Message.Result.endOffset(inFrameBeforeFailedCount: w.count - 4)
                    try BinaryCodec.encode(outputs, into: &w)
                }), frame.count - Frame.headerSize <= maximumPayload
        else { return nil }
        return ResultFrame(bytes: frame, endAt: times == nil ? 0 : endAt)
    }

    /// A result frame in which every item of the task's run failed with the same error.
    static func failAll(_ task: Message.Task, _ error: MultiprocessingError) -> [UInt8] {
        let header = Message.Result(
            callID: task.callID, chunkID: task.chunkID, computeNanos: 0, status: Message.Result.perItem,
            failedCount: task.runEnd - task.runStart)
        return
            (try? Frame.encode(.result) { w in
                header.write(to: &w)
                var items = ItemizedValues.Writer(&w, reservingCapacity: task.runEnd - task.runStart)
                for _ in task.runStart..<task.runEnd { items.appendFailure(error) }
                items.finish(into: &w)
            }) ?? []
    }

    /// Writes the result frame of a run item by item (status 1), in order of offset: an
    /// output, a thrown error or a library error for each. An output that cannot be encoded,
    /// or does not fit in the frame, fails only its own item.
    struct ItemizedWriter {
        private var writer: ByteWriter
        private var items: ItemizedValues.Writer
        private let failedCountAt: Int
        private let endAt: Int
        private let task: Message.Task
        /// The largest payload the frame may have.
        let limit: Int

        /// Starts the frame of `task`'s run, whose items ran for `computeNanos`.
        init(task: Message.Task, computeNanos: UInt64, times: Message.Result.Times?, maximumPayload: Int) {
            let header = Message.Result(
                callID: task.callID, chunkID: task.chunkID, computeNanos: computeNanos, status: Message.Result.perItem,
                times: times)
            writer = Frame.start(.result)
            header.write(to: &writer)
            failedCountAt = writer.count - 4
            endAt = times == nil ? 0 : Message.Result.endOffset(inFrameBeforeFailedCount: failedCountAt)
            items = ItemizedValues.Writer(&writer, reservingCapacity: task.runEnd - task.runStart)
            self.task = task
            limit = maximumPayload
        }

        /// Records an item the library could not run or carry (its error reaches the user
        /// with its own code).
        mutating func appendFailure(_ error: MultiprocessingError) {
            items.appendFailure(error)
        }

        /// Records an item whose function threw: a ``MultiprocessingError`` keeps its code,
        /// any other error becomes `functionThrew` in the parent.
        mutating func appendThrew(_ failure: _ItemFailure) {
            if let code = failure.code {
                items.appendFailure(MultiprocessingError(MultiprocessingError.Code(named: code), failure.message))
            } else {
                items.appendThrew(type: failure.type, message: failure.message)
            }
        }

        /// Writes the output of the item at input index `index`; one that cannot be encoded,
        /// or that would take the frame past ``limit``, is recorded as that item's failure.
        mutating func append<Output: Encodable>(_ output: Output, index: Int) {
            switch items.append(output, into: &writer, limit: limit) {
            case .value: break
            case .unencodable(let error):
                items.appendFailure(
                    MultiprocessingError(
                        .encodingFailed,
                        "the worker could not encode the result of item \(index) (\(String(reflecting: Output.self))): \(error.message)"
                    ))
            case .tooLarge(let size, alone: true):
                items.appendFailure(
                    MultiprocessingError(
                        .frameTooLarge,
                        "the result of item \(index) encodes to \(size) bytes, above the frame limit of \(limit) bytes: return a smaller result, or raise ProcessPool.Options.maximumFrameBytes"
                    ))
            case .tooLarge(_, alone: false):
                items.appendFailure(
                    MultiprocessingError(
                        .frameTooLarge,
                        "the results of items \(task.firstIndex + task.runStart)..<\(index + 1) together encode to more than the frame limit of \(limit) bytes: use a smaller chunkSize, or raise ProcessPool.Options.maximumFrameBytes"
                    ))
            }
        }

        /// The frame: the table written, the failed count patched (an empty array in the
        /// impossible case of a payload above the format's limit, which the item limit
        /// prevents).
        mutating func finish() -> ResultFrame {
            items.finish(into: &writer)
            writer.patch(fixed: UInt32(items.failedCount), at: failedCountAt)
            return ResultFrame(bytes: (try? Frame.seal(&writer, .result)) ?? [], endAt: endAt)
        }
    }

    /// The bytes of an all-succeeded body (the run's outputs, encoded as one `[Output]`
    /// value), for storing them as they came; `nil` for a body of any other status. `body`
    /// starts after the header.
    static func encodedOutputs(_ header: Message.Result, body: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        header.status == Message.Result.allSucceeded ? body : nil
    }

    /// Reads the body of a result frame whose header is `header` and whose body starts at
    /// `offset` of `payload`, for the items `range`; a body that cannot be read fails all of
    /// them. `worker` names the sender in the errors.
    static func read<Output: Decodable>(
        _ header: Message.Result, _ range: Range<Int>, _ payload: [UInt8], _ offset: Int,
        _ worker: MultiprocessingError.WorkerIdentity
    ) -> ResultChunk<Output> {
        do {
            return try payload.withUnsafeBytes { raw throws -> ResultChunk<Output> in
                var reader = ByteReader(raw, offset: offset)
                if header.status == Message.Result.allSucceeded {
                    let outputs = try BinaryCodec.decode([Output].self, from: &reader, asItems: true)
                    guard outputs.count == range.count, reader.isAtEnd else {
                        throw MultiprocessingError(
                            .malformedFrame,
                            "\(worker) sent \(outputs.count) results for a chunk of \(range.count) items")
                    }
                    return .values(start: range.lowerBound, outputs)
                }
                let table = try ItemizedValues.Table(&reader, count: range.count)
                // Outputs go straight into one array while every item succeeds; from the first
                // failure on, each item's outcome is kept.
                var outputs: [Output] = []
                outputs.reserveCapacity(range.count)
                var mixed: [Result<Output, MultiprocessingError>]?
                for position in table.entries.indices {
                    let outcome: Result<Output, MultiprocessingError> = Self.outcome(
                        table, position, index: range.lowerBound + position, raw, worker)
                    if mixed == nil, case .success(let output) = outcome {
                        outputs.append(output)
                        continue
                    }
                    if mixed == nil {
                        mixed = outputs.map { .success($0) }
                        outputs = []
                    }
                    mixed?.append(outcome)
                }
                guard let mixed else { return .values(start: range.lowerBound, outputs) }
                return .mixed(start: range.lowerBound, mixed)
            }
        } catch {
            return .failed(range: range, MultiprocessingError.from(error))
        }
    }

    /// Item `position` of an itemized body: its output, or the error a user sees for it.
    private static func outcome<Output: Decodable>(
        _ table: ItemizedValues.Table, _ position: Int, index: Int, _ raw: UnsafeRawBufferPointer,
        _ worker: MultiprocessingError.WorkerIdentity
    ) -> Result<Output, MultiprocessingError> {
        switch table.entries[position] {
        case .value:
            do {
                return .success(try table.decode(Output.self, at: position, in: raw))
            } catch {
                return .failure(
                    MultiprocessingError(
                        .decodingFailed,
                        "the result of item \(index) from \(worker) could not be decoded here (\(String(reflecting: Output.self))): \(error.message)",
                        itemIndex: index, worker: worker, underlying: error))
            }
        case .threw(let errorType, let errorMessage):
            return .failure(threwError(index: index, worker: worker, type: errorType, message: errorMessage))
        case .failed(let code, let message):
            return .failure(failedError(index: index, worker: worker, code: code, message: message))
        }
    }

    /// The error a user sees for an item whose function threw (on either engine).
    static func threwError(
        index: Int, worker: MultiprocessingError.WorkerIdentity, type: String, message: String
    ) -> MultiprocessingError {
        MultiprocessingError(
            .functionThrew, "item \(index) failed in \(worker): \(type): \(message)",
            itemIndex: index, worker: worker, remoteErrorType: type, remoteErrorMessage: message)
    }

    /// The error a user sees for an item that failed with a code of the library's.
    static func failedError(
        index: Int, worker: MultiprocessingError.WorkerIdentity, code: String, message: String
    ) -> MultiprocessingError {
        MultiprocessingError(
            MultiprocessingError.Code(named: code), "item \(index) failed in \(worker): \(message)",
            itemIndex: index, worker: worker)
    }
}

/// A result frame a worker wrote, and where its end time goes.
struct ResultFrame {
    /// The frame's bytes.
    var bytes: [UInt8]
    /// Where the chunk's end time sits in ``bytes``; 0 when the chunk is not timed.
    let endAt: Int

    /// Writes the chunk's end time (the worker's monotonic clock, read once the frame is
    /// encoded) into the frame; nothing when the chunk is not timed.
    mutating func stampEnd(_ nanos: UInt64) {
        guard endAt > 0, endAt + 8 <= bytes.count else { return }
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: nanos.littleEndian, toByteOffset: endAt, as: UInt64.self) }
    }
}

/// A chunk's outcomes as read from its result body (or computed in this process by the
/// thread engine): the outputs when every item succeeded, each item's outcome otherwise,
/// or one error for the whole chunk when its body could not be read.
enum ResultChunk<Output> {
    /// Every item succeeded: the outputs of the items from `start` on.
    case values(start: Int, [Output])
    /// Some items failed: each item's outcome, from `start` on.
    case mixed(start: Int, [Result<Output, MultiprocessingError>])
    /// Every item of `range` failed with this error.
    case failed(range: Range<Int>, MultiprocessingError)

    /// The input index of the chunk's first item.
    var start: Int {
        switch self {
        case .values(let start, _), .mixed(let start, _): return start
        case .failed(let range, _): return range.lowerBound
        }
    }

    /// How many items the chunk holds.
    var count: Int {
        switch self {
        case .values(_, let values): return values.count
        case .mixed(_, let results): return results.count
        case .failed(let range, _): return range.count
        }
    }
}
