import Synchronization

/// What the loop thread (reading the input) and the consumer of a journaled stream share:
/// the call's index of each computed item, and the items taken from the journal, in
/// index order, not yet yielded.
final class StreamJournalShared<Output: Sendable>: Sendable {
    struct State: ~Copyable {
        var originals: [Int] = []
        var hits: [ItemResult<Output>] = []
        var hitHead = 0
    }
    /// Computed items keep their index (nothing was in the journal for this call).
    let identity: Bool
    let state = Mutex(State())

    init(identity: Bool) { self.identity = identity }

    func add(hits: [ItemResult<Output>], originals: [Int]) {
        guard !hits.isEmpty || !(identity || originals.isEmpty) else { return }
        state.withLock { state in
            state.hits += hits
            if !identity { state.originals += originals }
        }
    }

    /// The call's index of computed item `sub`.
    func original(_ sub: Int) -> Int {
        identity ? sub : state.withLock { $0.originals[sub] }
    }

    func originals(_ range: Range<Int>) -> JournalIndices {
        identity ? .contiguous(range) : .listed(state.withLock { Array($0.originals[range]) })
    }

    /// The next hit not yielded yet, when its index is below `limit` (or any, without one).
    func takeHit(below limit: Int? = nil) -> ItemResult<Output>? {
        state.withLock { state in
            guard state.hitHead < state.hits.count else { return nil }
            let hit = state.hits[state.hitHead]
            if let limit, hit.index >= limit { return nil }
            state.hitHead += 1
            if state.hitHead > 4096 && state.hitHead * 2 > state.hits.count {
                state.hits.removeFirst(state.hitHead)
                state.hitHead = 0
            }
            return hit
        }
    }
}

/// The journal's side of one stream on the supervisor's loop thread: reads the input,
/// serves what the journal holds, hashes and passes on the rest, journals results.
final class StreamJournal<F: WorkerFunction>: @unchecked Sendable {
    let writer: JournalCallWriter
    let lookup: JournalLookup<F.Output>
    let pool: PoolJournal
    let shared: StreamJournalShared<F.Output>
    private var hasher = InputHasher<F.Input>()
    private var nextIndex = 0
    /// Input hashes by computed item.
    private var hashes: [UInt64] = []
    private var reused = 0
    private var changed = 0
    private var ended = false
    private var countedUpFront = false

    /// The input's length when it is a collection.
    let knownCount: Int?

    init(writer: JournalCallWriter, lookup: JournalLookup<F.Output>, pool: PoolJournal, knownCount: Int?) {
        self.knownCount = knownCount
        self.writer = writer
        self.lookup = lookup
        self.pool = pool
        shared = StreamJournalShared(identity: lookup.outputs.isEmpty)
    }

    /// Up to `count` inputs to compute, reading past those the journal holds.
    func read(_ count: Int, next: () -> F.Input?) -> [F.Input] {
        var items: [F.Input] = []
        items.reserveCapacity(min(count, 4096))
        var originals: [Int] = []
        var hits: [ItemResult<F.Output>] = []
        while items.count < count {
            // The supervisor stops asking once a known count is reached: the end is seen then.
            guard nextIndex != knownCount, let item = next() else {
                reportOnce()
                break
            }
            let index = nextIndex
            nextIndex += 1
            let hash = (try? hasher.hash(item)) ?? 0
            if let output = lookup.output(at: index, hash: hash) {
                hits.append(ItemResult(index: index, result: .success(output)))
                reused += 1
                if !countedUpFront { writer.progress.reused.add(1, ordering: .relaxed) }
                continue
            }
            if lookup.isRecorded(index) { changed += 1 }
            items.append(item)
            originals.append(index)
            hashes.append(hash)
        }
        shared.add(hits: hits, originals: originals)
        if nextIndex == knownCount { reportOnce() }
        return items
    }

    private func reportOnce() {
        guard !ended else { return }
        ended = true
        pool.report(writer, reused: reused, computed: nextIndex - reused, changed: changed, mismatch: lookup.mismatch)
    }

    /// For an input of known length (a collection, which can be read twice): counts what
    /// the journal holds before the first chunk, so the call's line ("resumed: K items from
    /// the journal, N to go") comes at its start rather than once the input is read.
    func reportUpFront(_ inputs: some Sequence<F.Input>) {
        guard let knownCount else { return }
        var reused = 0
        var changed = 0
        if !lookup.outputs.isEmpty {
            var hasher = InputHasher<F.Input>()
            for (index, item) in inputs.enumerated() {
                let hash = (try? hasher.hash(item)) ?? 0
                if lookup.output(at: index, hash: hash) != nil {
                    reused += 1
                } else if lookup.isRecorded(index) {
                    changed += 1
                }
            }
        }
        ended = true
        countedUpFront = true
        writer.progress.reused.store(reused, ordering: .relaxed)
        pool.report(
            writer, reused: reused, computed: knownCount - reused, changed: changed, mismatch: lookup.mismatch)
    }

    func deliver(_ events: [CallEvent]) {
        for event in events {
            if case .computed(let computed) = event {
                record(
                    writer, computed.chunk(as: F.Output.self), shared.originals(computed.range), hashes[computed.range])
                continue
            }
            guard case .results(let header, let range, let payload, let offset, let worker) = event else { continue }
            record(
                writer, header, range, payload, offset, worker, shared.originals(range), hashes[range], F.Output.self)
        }
    }
}

/// The consumer of a journaled stream: merges the journal's items with the computed ones
/// (in index order for `imap`; journal items first for `imapUnordered`). Used by one
/// iterating task at a time.
final class JournaledResultsCore<Output: Decodable & Sendable>: @unchecked Sendable {
    let inner: ResultsCore<Output>
    let shared: StreamJournalShared<Output>
    let ordered: Bool
    private var pending: ItemResult<Output>?
    private var innerDone = false
    /// Ordered: the index to yield next.
    private var nextIndex = 0

    init(inner: ResultsCore<Output>, shared: StreamJournalShared<Output>, ordered: Bool) {
        self.inner = inner
        self.shared = shared
        self.ordered = ordered
    }

    func next() async throws(MultiprocessingError) -> ItemResult<Output>? {
        if !ordered {
            if let hit = shared.takeHit() { return hit }
            if !innerDone {
                if let item = try await inner.next() { return remap(item) }
                innerDone = true
            }
            return shared.takeHit()
        }
        while true {
            if let hit = shared.takeHit(below: nextIndex + 1) {
                nextIndex = hit.index + 1
                return hit
            }
            if let item = pending {
                if let hit = shared.takeHit(below: item.index) {
                    nextIndex = hit.index + 1
                    return hit
                }
                pending = nil
                nextIndex = item.index + 1
                return item
            }
            if innerDone {
                guard let hit = shared.takeHit() else { return nil }
                nextIndex = hit.index + 1
                return hit
            }
            if let item = try await inner.next() {
                pending = remap(item)
            } else {
                innerDone = true
            }
        }
    }

    private func remap(_ item: ItemResult<Output>) -> ItemResult<Output> {
        guard !shared.identity else { return item }
        let index = shared.original(item.index)
        switch item.result {
        case .success: return ItemResult(index: index, result: item.result)
        case .failure(let error):
            let fixed =
                error.itemIndex == item.index
                ? MultiprocessingError(
                    error.code, error.message.replacingFirst("item \(item.index) ", with: "item \(index) "),
                    itemIndex: index, worker: error.worker, remoteErrorType: error.remoteErrorType,
                    remoteErrorMessage: error.remoteErrorMessage, termination: error.termination,
                    interruptSignal: error.interruptSignal, underlying: error.underlying) : error
            return ItemResult(index: index, result: .failure(fixed))
        }
    }
}

extension String {
    /// The string with the first occurrence of `target` replaced.
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}

extension ProcessPool {
    /// A stream with the journal (see ``imap(_:_:chunkSize:progress:)``).
    func journaledStream<F: WorkerFunction, S: Sequence>(
        _ pool: PoolJournal, _ function: F, _ inputs: sending S, typeName: String, chunkSize: Int?, ordered: Bool,
        name: String, progress: ProgressMode?
    ) throws -> Results<F.Output> where S.Element == F.Input {
        let identity = try JournalContents.identity(of: function, buildID: pool.buildID)
        let lookup = pool.journal.held.lookup(identity, anyBuild: pool.anyBuild, as: F.Output.self)
        let knownCount = (inputs as? any Collection)?.count
        let writer = JournalCallWriter(journal: pool.journal, name: name, identity: identity, itemCount: knownCount)
        let journal = StreamJournal<F>(writer: writer, lookup: lookup, pool: pool, knownCount: knownCount)
        journal.reportUpFront(inputs)
        let source = IteratorBox(inputs.makeIterator())
        let chunks = StreamChunker<F.Input>(
            chunkSize: chunkSize, limit: options.maximumFrameBytes, inProcess: inProcessChunks(function))
        // With items from the journal, how many are computed is learnt at the end.
        let total = lookup.outputs.isEmpty ? knownCount : nil
        let (callID, events) = try startCall(
            function, name: name, typeName: typeName, totalItems: total, chunkSize: chunkSize,
            window: workerCount * Self.streamChunksPerWorker, largestChunk: Self.streamLargestChunk,
            progress: progress,
            produce: { callID, chunkID, first, count in
                // The journal reads items (taking those it holds); the chunker keeps any a
                // frame could not hold for the next chunk, in order.
                chunks.produce(callID: callID, chunkID: chunkID, first: first, count: count) { wanted in
                    journal.read(wanted) { source.iterator.next() }
                }
            }, onDeliver: { journal.deliver($0) })
        let inner = ResultsCore<F.Output>(
            callID: callID, events: events, supervisor: supervisor, ordered: ordered, total: total)
        return Results(journaled: JournaledResultsCore(inner: inner, shared: journal.shared, ordered: ordered))
    }
}
