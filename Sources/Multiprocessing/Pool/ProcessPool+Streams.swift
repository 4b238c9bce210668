/// Streams, submitted calls and map-reduce: the calls for consuming results as they come.
extension ProcessPool {
    /// How many chunks a stream may have in flight or waiting for its consumer, per
    /// worker: enough to keep every worker busy while the consumer catches up, few
    /// enough that memory stays bounded whatever the input's length.
    static let streamChunksPerWorker = 2 * Supervisor.chunksPerWorker
    /// The most items one chunk of a stream holds (streams bound their memory; `map`,
    /// whose input is in memory already, allows larger chunks).
    static let streamLargestChunk = 1 << 16

    /// Applies `function` to every input and yields the results in input order, as they
    /// become available (Python's `Pool.imap`).
    ///
    /// The input is read lazily, as workers need more, so an input of 10^9 items streams
    /// in bounded memory; a consumer slower than the workers holds new work back
    /// (backpressure). A failed item is yielded as its failure, at its index, and the
    /// stream goes on.
    ///
    /// ```swift
    /// for try await item in pool.imap(Square(), (0..<1_000_000).lazy.map { $0 }) {
    ///     total += try item.get()
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - function: the function value.
    ///   - inputs: any sequence, read on the pool's thread as workers need items; it is
    ///     `sending`: the pool takes it over.
    ///   - chunkSize: items per chunk; `nil` sizes chunks automatically.
    ///   - progress: progress output for this call, overriding the pool's.
    /// - Returns: the stream. Stopping the iteration, or cancelling the task that iterates,
    ///   stops the work: workers still running its chunks are stopped and replaced.
    ///   The stream throws (ending the iteration) only when the whole call fails: the
    ///   pool is closed, or the function cannot be installed in a worker.
    public func imap<F: WorkerFunction, S: Sequence>(
        _ function: F, _ inputs: sending S, chunkSize: Int? = nil, progress: ProgressMode? = nil
    ) -> Results<F.Output> where S.Element == F.Input {
        stream(function, inputs, chunkSize: chunkSize, ordered: true, name: "imap", progress: progress)
    }

    /// Applies `function` to every input and yields each result as soon as it is ready,
    /// in any order, with its input index (Python's `Pool.imap_unordered`).
    ///
    /// Everything ``imap(_:_:chunkSize:progress:)`` says holds, except the order: uneven work is
    /// not held up behind a slow item.
    public func imapUnordered<F: WorkerFunction, S: Sequence>(
        _ function: F, _ inputs: sending S, chunkSize: Int? = nil, progress: ProgressMode? = nil
    ) -> Results<F.Output> where S.Element == F.Input {
        stream(function, inputs, chunkSize: chunkSize, ordered: false, name: "imapUnordered", progress: progress)
    }

    private func stream<F: WorkerFunction, S: Sequence>(
        _ function: F, _ inputs: sending S, chunkSize: Int?, ordered: Bool, name: String, progress: ProgressMode?
    ) -> Results<F.Output> where S.Element == F.Input {
        do {
            try checkOpen()
            try Self.check(chunkSize: chunkSize)
            let typeName = try F.checkFindableByName()
            if let share = try ArrayTask.takeShare() {
                // An array task's shared call: the input is read whole (its count cuts the shares).
                let items = Array(inputs)
                return Results(
                    array: ArrayResultsCore { [self] in
                        try await arrayMap(
                            share, function, items, typeName: typeName, chunkSize: chunkSize, progress: progress,
                            name: name)
                    })
            }
            if let journal {
                return try journaledStream(
                    journal, function, inputs, typeName: typeName, chunkSize: chunkSize, ordered: ordered, name: name,
                    progress: progress)
            }
            // A collection says how many items it has: progress shows a total, and chunks
            // shrink toward the end (better balance). Other sequences learn it at the end.
            let knownCount = (inputs as? any Collection)?.count
            let source = IteratorBox(inputs.makeIterator())
            let chunks = StreamChunker<F.Input>(
                chunkSize: chunkSize, limit: options.maximumFrameBytes, inProcess: inProcessChunks(function))
            let credit = StreamCredit()  // the consumer gives window room back without waking the engine
            let (callID, events) = try startCall(
                function, name: name, typeName: typeName, totalItems: knownCount, chunkSize: chunkSize,
                window: workerCount * Self.streamChunksPerWorker, largestChunk: Self.streamLargestChunk,
                progress: progress,
                produce: { callID, chunkID, first, count in
                    chunks.produce(callID: callID, chunkID: chunkID, first: first, count: count) { wanted in
                        var items: [F.Input] = []
                        items.reserveCapacity(min(wanted, 4096))
                        while items.count < wanted, let item = source.iterator.next() { items.append(item) }
                        return items
                    }
                }, credit: credit)
            return Results(
                core: ResultsCore(
                    callID: callID, events: events, supervisor: supervisor, ordered: ordered, total: knownCount,
                    credit: credit))
        } catch {
            return Results(failure: MultiprocessingError.from(error))
        }
    }

    /// Submits one call and returns at once; await the handle's ``PendingCall/value``
    /// later (Python's `Pool.apply_async`). Many may be in flight at once.
    ///
    /// - Returns: a handle. Cancelling it (or the task that submitted it, if it awaits it)
    ///   stops the work: a worker running it is stopped and replaced. A call submitted
    ///   before ``closeAndJoin()`` runs to its end even if its task starts after the join
    ///   began; one submitted after fails with ``MultiprocessingError/Code/poolClosed``.
    public func applyAsync<F: WorkerFunction>(_ function: F, _ input: F.Input) -> PendingCall<F.Output> {
        // Counted now, not when its task first runs, so that a join begun in between waits for it.
        guard outstanding.enter() else {
            return PendingCall(task: Task { () async throws -> F.Output in throw Self.joiningError() })
        }
        return PendingCall(
            task: Task {
                defer { self.outstanding.leave() }
                return try await self.apply(function, input, admitted: true)
            })
    }

    /// Applies `function` to every input and folds the outputs into `initial` as they
    /// arrive, without keeping them (a streaming map-reduce; Python's
    /// `functools.reduce(f, pool.imap(...))`).
    ///
    /// - Parameters:
    ///   - function: the function value.
    ///   - inputs: any sequence, read lazily (as for ``imap(_:_:chunkSize:progress:)``).
    ///   - initial: the starting value of the fold.
    ///   - ordered: `true` folds in input order (for a `combine` that is not commutative);
    ///     `false` folds in arrival order, which never waits for a slow item.
    ///   - chunkSize: items per chunk; `nil` sizes chunks automatically.
    ///   - progress: progress output for this call, overriding the pool's.
    ///   - isolation: the caller's actor; `combine` runs on it.
    ///   - combine: folds one output into the accumulated value; runs in this process.
    /// - Returns: the folded value.
    /// - Throws: at the first failed item, its ``MultiprocessingError`` (the rest of the
    ///   work is stopped); whatever `combine` throws; ``MultiprocessingError/Code/cancelled``
    ///   when the task is cancelled.
    public func mapReduce<F: WorkerFunction, S: Sequence, Value>(
        _ function: F, _ inputs: sending S, into initial: Value, ordered: Bool = true, chunkSize: Int? = nil,
        progress: ProgressMode? = nil, isolation: isolated (any Actor)? = #isolation,
        _ combine: (inout Value, F.Output) throws -> Void
    ) async throws -> Value where S.Element == F.Input {
        var value = initial
        let results = stream(
            function, inputs, chunkSize: chunkSize, ordered: ordered, name: "mapReduce", progress: progress)
        for try await item in results {
            try combine(&value, item.get())
        }
        if Task.isCancelled {
            throw MultiprocessingError(
                .cancelled, "the task that called mapReduce was cancelled; the work it started was stopped")
        }
        return value
    }
}

/// The input of a stream, read only on the supervisor's thread once the pool has taken
/// it over (the `sending` parameter guarantees the caller no longer touches it).
final class IteratorBox<Iterator: IteratorProtocol>: @unchecked Sendable {
    var iterator: Iterator
    init(_ iterator: Iterator) { self.iterator = iterator }
}

/// Cuts a stream's chunks from items read on demand. Items that a chunk's frame could not
/// hold (``ProcessPool/taskFrame(callID:chunkID:first:inputs:raw:limit:sizeHint:)`` sends the
/// first ones when they do not fit together) go first in the next chunk, in order: an item
/// read from the program's sequence is sent once, never lost, never read twice. Used only
/// by the loop's owner, one chunk at a time.
final class StreamChunker<Input: Encodable>: @unchecked Sendable {
    private let chunkSize: Int?
    private let limit: Int
    private let sizeHint = FrameSizeHint()
    private let raw = ItemizedValues.isRaw(Input.self)
    private var leftOver: [Input] = []
    /// Makes the chunks for the threads engine (no frame, no limit); `nil` for processes.
    private let inProcess: InProcessChunker<Input>?

    init(chunkSize: Int?, limit: Int, inProcess: InProcessChunker<Input>? = nil) {
        self.chunkSize = chunkSize
        self.limit = limit
        self.inProcess = inProcess
    }

    /// The next chunk of up to `count` items (fewer for automatic chunks of large items),
    /// items left over first, then new ones from `read(atMost:)`; `nil` when there are none.
    func produce(
        callID: UInt64, chunkID: UInt64, first: Int, count: Int, read: (_ atMost: Int) -> [Input]
    ) -> ProducedChunk? {
        let count = chunkSize == nil ? sizeHint.automaticChunkItems(count) : count
        var items: [Input]
        if leftOver.isEmpty {
            items = read(count)
        } else {
            items = Array(leftOver.prefix(count))
            leftOver.removeFirst(items.count)
            if items.count < count { items += read(count - items.count) }
        }
        if items.isEmpty { return nil }
        if let inProcess { return inProcess(first, items[...], sizeHint) }
        let produced = ProcessPool.taskFrame(
            callID: callID, chunkID: chunkID, first: first, inputs: items[...], raw: raw, limit: limit,
            sizeHint: sizeHint)
        if case .frame(let sent, _) = produced, sent < items.count {
            leftOver.insert(contentsOf: items[sent...], at: 0)
        }
        return produced
    }
}

/// A submitted call (``ProcessPool/applyAsync(_:_:)``).
public struct PendingCall<Output: Sendable>: Sendable {
    let task: Task<Output, any Error>

    /// The call's output, once it is ready.
    /// - Throws: the errors of ``ProcessPool/apply(_:_:)``; ``MultiprocessingError/Code/cancelled``
    ///   when the call was cancelled.
    ///
    /// Cancelling the task that awaits it cancels the call too.
    public var value: Output {
        get async throws {
            let task = self.task
            return try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        }
    }

    /// Stops the call: it is no longer sent to a worker, and a worker running it is
    /// stopped and replaced. Awaiting ``value`` then throws.
    public func cancel() {
        task.cancel()
    }
}
