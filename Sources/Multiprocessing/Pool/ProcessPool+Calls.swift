import Synchronization

/// What every call (`map`, the streams, `apply`) shares: starting a call in the
/// supervisor, encoding its chunks, checking arguments.
extension ProcessPool {
    /// Registers a call with the supervisor and returns its id and its events, which come
    /// in batches (all that one round of the supervisor's loop produced). The stream
    /// finishes when the supervisor forgets the call.
    func startCall<F: WorkerFunction>(
        _ function: F, name: String, typeName: String, totalItems: Int?, chunkSize: Int?, window: Int?,
        largestChunk: Int = ChunkSizer.maximumChunkItems, progress: ProgressMode? = nil, admitted: Bool = false,
        produce: @escaping (_ callID: UInt64, _ chunkID: UInt64, _ first: Int, _ count: Int) -> ProducedChunk?,
        onDeliver: (@Sendable ([CallEvent]) -> Void)? = nil, credit: StreamCredit? = nil
    ) throws -> (UInt64, AsyncStream<[CallEvent]>) {
        let callID = nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue
        // Threads run the function value itself: nothing to install.
        let installFrame =
            engine == .threads
            ? []
            : try Frame.encode(.install) { w throws in
                let timesChunks = (self.supervisor as? Supervisor)?.timeline != nil  // the pool writes a timeline
                Message.Install(callID: callID, typeName: typeName, timesChunks: timesChunks).write(to: &w)
                try BinaryCodec.encode(function, into: &w)
            }
        // Counted until the supervisor forgets the call (closeAndJoin waits for that).
        guard outstanding.enter(admitted: admitted) else { throw Self.joiningError() }
        let outstanding = self.outstanding
        let (events, continuation) = AsyncStream<[CallEvent]>.makeStream()
        let supervisor = self.supervisor
        continuation.onTermination = { reason in
            // The consumer went away (its task was cancelled, or it dropped the stream).
            if case .cancelled = reason { supervisor.finish(callID: callID, stopRunningWork: true) }
        }
        let call = CallRecord(
            id: callID, installFrame: installFrame,
            schedule: CallSchedule(
                totalItems: totalItems, workers: workerCount, fixedChunkSize: chunkSize, window: window,
                largestChunk: largestChunk),
            produce: { chunkID, first, count in produce(callID, chunkID, first, count) },
            deliver: { events in
                onDeliver?(events)  // the journal writes results before the consumer sees them
                continuation.yield(events)
            },
            onForget: {
                continuation.finish()
                outstanding.leave()
            }, credit: credit)
        call.name = name
        call.readsProgramInput = window != nil  // a stream: its chunks come from the program's sequence
        call.progress = progress.map {
            ProgressMode.resolve(
                $0, environment: Platform.environment("MP_PROGRESS"), stderrIsTerminal: Platform.standardErrorIsTerminal
            )
            .0
        }
        supervisor.submit(call)
        return (callID, events)
    }

    /// Encodes inputs as the task frame of one chunk, or of its first items when the chunk
    /// would pass the frame limit `limit` (the caller sends the rest in later chunks).
    ///
    /// Inputs that travel as raw bytes are one copy. Others are encoded one by one
    /// (``ItemizedValues``): an input that cannot be encoded, or is too large for a frame on
    /// its own, fails alone with its index (the worker reports it back without running
    /// it); the other items of the chunk run.
    ///
    /// `raw` is ``ItemizedValues/isRaw(_:)`` of `Input`, asked once per call by the caller (a
    /// dynamic conformance check is too dear for every chunk).
    static func taskFrame<Input: Encodable>(
        callID: UInt64, chunkID: UInt64, first: Int, inputs: ArraySlice<Input>, raw: Bool, limit: Int,
        sizeHint: FrameSizeHint? = nil
    ) -> ProducedChunk {
        let task = Message.Task(callID: callID, chunkID: chunkID, firstIndex: first, count: inputs.count)
        let capacity = sizeHint?.expectedBytes(items: inputs.count) ?? 64
        do {
            let frame: TaskFrame
            if raw {
                frame = try TaskFrame(task: task, capacity: capacity) { w in try BinaryCodec.encode(inputs, into: &w) }
            } else {
                var fitting = inputs.count
                frame = try TaskFrame(task: task, capacity: capacity) { w in
                    var items = ItemizedValues.Writer(&w, reservingCapacity: inputs.count)
                    encoding: for (position, input) in zip(0..., inputs) {
                        let index = first + position
                        switch items.append(input, into: &w, limit: limit) {
                        case .value: break
                        case .unencodable(let error):
                            items.appendFailure(
                                MultiprocessingError(
                                    .encodingFailed,
                                    "the input of item \(index) (\(String(reflecting: Input.self))) could not be encoded: \(error.message)"
                                ))
                        case .tooLarge(let size, alone: true):
                            items.appendFailure(
                                MultiprocessingError(
                                    .frameTooLarge,
                                    "the input of item \(index) encodes to \(size) bytes, above the frame limit of \(limit) bytes: send smaller items, or raise ProcessPool.Options.maximumFrameBytes"
                                ))
                        case .tooLarge(_, alone: false):
                            fitting = position  // it and the items after it go in the next chunk
                            break encoding
                        }
                    }
                    items.finish(into: &w)
                }
                if fitting < inputs.count {
                    // The header counts every input: encode the ones that fit again, alone.
                    return taskFrame(
                        callID: callID, chunkID: chunkID, first: first, inputs: inputs.prefix(fitting), raw: raw,
                        limit: limit, sizeHint: sizeHint)
                }
            }
            sizeHint?.record(bytes: frame.bytes.count, items: inputs.count)
            return .frame(count: inputs.count, frame)
        } catch {
            let cause = MultiprocessingError.from(error)
            return .failed(
                count: inputs.count,
                MultiprocessingError(
                    .encodingFailed,
                    "the inputs of items \(first)..<\(first + inputs.count) (\(String(reflecting: Input.self))) could not be encoded: \(cause.message)",
                    itemIndex: inputs.count == 1 ? first : nil, underlying: cause))
        }
    }

    static func check(chunkSize: Int?) throws {
        if let chunkSize, chunkSize < 1 {
            throw MultiprocessingError(.invalidArgument, "chunkSize must be at least 1; \(chunkSize) was given")
        }
    }
}

/// The bytes per item of a call's last chunk, so that the next chunk's frame is allocated
/// at about its final size instead of growing by doubling (which copies large inputs
/// several times), and automatic chunks stay small in bytes. Used only by the
/// supervisor's event loop owner, one chunk at a time.
final class FrameSizeHint: @unchecked Sendable {
    private var bytesPerItem = 0

    /// Automatic chunks hold about this many bytes of inputs at most (at least one item).
    /// Cheap items would otherwise make chunks of megabytes: measured here, 32 KiB chunks
    /// of `Int`s map 1.6x faster than 8 MiB ones (caches; the per-chunk cost is already
    /// small), and 1 MiB inputs one per chunk move 3x faster than 32 per chunk (fresh
    /// pages for every big frame and its decoded inputs).
    static let automaticChunkBytes = 32 << 10

    /// `count` items, or fewer so that an automatic chunk stays near ``automaticChunkBytes``.
    func automaticChunkItems(_ count: Int) -> Int {
        guard bytesPerItem > 0 else { return count }
        return min(count, max(1, Self.automaticChunkBytes / bytesPerItem))
    }

    func expectedBytes(items: Int) -> Int {
        let (product, overflow) = bytesPerItem.multipliedReportingOverflow(by: items)
        return overflow ? 64 : min(product + product / 8 + 64, Frame.absoluteMaximumPayload)
    }

    func record(bytes: Int, items: Int) {
        if items > 0 { bytesPerItem = bytes / items }
    }
}
