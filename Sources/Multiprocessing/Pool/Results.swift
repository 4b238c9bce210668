/// The results of a stream (``ProcessPool/imap(_:_:chunkSize:progress:)``,
/// ``ProcessPool/imapUnordered(_:_:chunkSize:progress:)``): one ``ItemResult`` per input.
///
/// Iterate it once. Breaking out of the loop, dropping the stream or cancelling the
/// iterating task stops the call's work. The iteration throws only when the whole call
/// fails (the pool closed, the function could not be installed); a failed item is
/// yielded as its ``ItemResult`` and the stream goes on.
public struct Results<Output: Decodable & Sendable>: AsyncSequence, Sendable {
    /// One item's outcome, with its index.
    public typealias Element = ItemResult<Output>
    /// What the iteration throws when the whole call fails.
    public typealias Failure = MultiprocessingError

    let core: ResultsCore<Output>?
    let failure: MultiprocessingError?
    var journaled: JournaledResultsCore<Output>?
    var array: ArrayResultsCore<Output>?

    init(core: ResultsCore<Output>) {
        self.core = core
        failure = nil
    }

    init(journaled: JournaledResultsCore<Output>) {
        core = nil
        failure = nil
        self.journaled = journaled
    }

    init(array: ArrayResultsCore<Output>) {
        core = nil
        failure = nil
        self.array = array
    }

    init(failure: MultiprocessingError) {
        core = nil
        self.failure = failure
    }

    /// Iterates the results.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(core: core, failure: failure, journaled: journaled, array: array)
    }

    /// Yields the results of a stream.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let core: ResultsCore<Output>?
        var failure: MultiprocessingError?
        let journaled: JournaledResultsCore<Output>?
        let array: ArrayResultsCore<Output>?

        /// The next result, `nil` at the end.
        /// - Throws: ``MultiprocessingError`` when the whole call failed, or with code
        ///   ``MultiprocessingError/Code/cancelled`` when the iterating task was cancelled.
        public mutating func next() async throws(MultiprocessingError) -> ItemResult<Output>? {
            if let failure {
                self.failure = nil
                throw failure
            }
            if let journaled { return try await journaled.next() }
            if let array { return try await array.nextItem() }
            guard let core else { return nil }
            return try await core.next()
        }
    }
}

/// The state of one stream's consumer: reorders (or not) and decodes chunks as their
/// events arrive, and tells the supervisor when a chunk has been consumed so that more
/// work may be sent. Used by one iterating task at a time.
final class ResultsCore<Output: Decodable & Sendable>: @unchecked Sendable {
    /// A chunk's outcome, decoded (``ResultBody/read(_:_:_:_:_:)``).
    typealias Chunk = ResultChunk<Output>

    let callID: UInt64
    let supervisor: any PoolEngine
    let ordered: Bool
    /// Where consumed chunks are counted without waking the engine (``StreamCredit``);
    /// `nil`: each one is reported with ``PoolEngine/consumed(callID:chunks:)``.
    let credit: StreamCredit?
    private var events: AsyncStream<[CallEvent]>.AsyncIterator
    /// Events of the last batch not handled yet.
    private var pending: [CallEvent] = []
    private var pendingIndex = 0
    private var total: Int?
    /// Ordered: the index of the next item to yield. Unordered: items yielded so far.
    private var yielded = 0
    private var waiting: [Int: Chunk] = [:]
    private var arrivals: [Chunk] = []
    private var current: Chunk?
    private var position = 0
    private var done = false

    init(
        callID: UInt64, events: AsyncStream<[CallEvent]>, supervisor: any PoolEngine, ordered: Bool, total: Int?,
        credit: StreamCredit? = nil
    ) {
        self.credit = credit
        self.callID = callID
        self.total = total
        self.events = events.makeAsyncIterator()
        self.supervisor = supervisor
        self.ordered = ordered
    }

    deinit {
        // Dropped before the end: stop the work (a no-op when the call is over).
        supervisor.finish(callID: callID, stopRunningWork: !done)
    }

    func next() async throws(MultiprocessingError) -> ItemResult<Output>? {
        while !done {
            if let chunk = current {
                if position < chunk.count {
                    position += 1
                    yielded += 1
                    return chunk.item(position - 1)
                }
                current = nil
                if let credit {
                    if credit.add(1) { supervisor.consumed(callID: callID, chunks: 0) }  // it waits for room
                } else {
                    supervisor.consumed(callID: callID, chunks: 1)
                }
            }
            if let total, yielded >= total {
                finish(stopRunningWork: false)
                return nil
            }
            if ordered, let chunk = waiting.removeValue(forKey: yielded) {
                current = chunk
                position = 0
                continue
            }
            if !ordered, !arrivals.isEmpty {
                current = arrivals.removeFirst()
                position = 0
                continue
            }
            guard let event = await nextEvent() else {
                finish(stopRunningWork: true)
                if Task.isCancelled {
                    throw MultiprocessingError(
                        .cancelled, "the task iterating the stream was cancelled; the work it started was stopped")
                }
                return nil
            }
            switch event {
            case .results(let header, let range, let payload, let offset, let worker):
                add(Self.decode(header, range, payload, offset, worker))
            case .chunkFailed(let range, let error):
                add(.failed(range: range, error))
            case .computed(let computed):
                add(computed.chunk(as: Output.self))
            case .ended(let count):
                total = count
            case .failed(let error):
                finish(stopRunningWork: true)
                throw error
            }
        }
        return nil
    }

    /// The next event: from the batch in hand, else from the next batch.
    private func nextEvent() async -> CallEvent? {
        while pendingIndex == pending.count {
            guard let batch = await events.next() else { return nil }
            pending = batch
            pendingIndex = 0
        }
        pendingIndex += 1
        return pending[pendingIndex - 1]
    }

    private func add(_ chunk: Chunk) {
        if ordered {
            waiting[chunk.start] = chunk
        } else {
            arrivals.append(chunk)
        }
    }

    private func finish(stopRunningWork: Bool) {
        guard !done else { return }
        done = true
        supervisor.finish(callID: callID, stopRunningWork: stopRunningWork)
    }

    /// Decodes a result frame; a frame that cannot be decoded fails its chunk's items.
    static func decode(
        _ header: Message.Result, _ range: Range<Int>, _ payload: [UInt8], _ offset: Int,
        _ worker: MultiprocessingError.WorkerIdentity
    ) -> Chunk {
        ResultBody.read(header, range, payload, offset, worker)
    }
}

extension ResultChunk where Output: Sendable {
    /// The item at `offset` of the chunk, as the stream yields it.
    func item(_ offset: Int) -> ItemResult<Output> {
        switch self {
        case .values(let start, let values):
            return ItemResult(index: start + offset, result: .success(values[offset]))
        case .mixed(let start, let results): return ItemResult(index: start + offset, result: results[offset])
        case .failed(let range, let error):
            return ItemResult(
                index: range.lowerBound + offset, result: .failure(error.forItem(range.lowerBound + offset)))
        }
    }
}
