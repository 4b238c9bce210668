import FoundationEssentials
import Synchronization

/// A pool's journal settings, resolved from ``ProcessPool/Options`` and the environment.
final class PoolJournal: Sendable {
    let journal: Journal
    /// Reuse results recorded by other builds of the program.
    let anyBuild: Bool
    /// The build id recorded with new calls and compared with recorded ones.
    let buildID: [UInt8]
    /// `MP_JOURNAL_EXPORT`: a file to which each journaled `map` appends its results as JSON lines.
    let exportPath: String?
    /// Items this pool's calls took from the journal.
    let reused = Atomic<Int>(0)

    /// The settings for `options` (a path in code wins over `MP_JOURNAL`), opening the
    /// journal; `nil` when none is asked for.
    /// - Throws: the errors of ``Journal/init(path:syncIntervalNanos:)``;
    ///   ``MultiprocessingError/Code/invalidArgument`` for a sync interval that is not positive.
    static func resolve(_ options: ProcessPool.Options) async throws -> PoolJournal? {
        let fromEnvironment = Platform.environment("MP_JOURNAL").flatMap { $0.isEmpty ? nil : $0 }
        guard let path = options.journalPath ?? fromEnvironment else { return nil }
        let (seconds, attoseconds) = options.journalSyncInterval.components
        guard options.journalSyncInterval > .zero else {
            throw MultiprocessingError(
                .invalidArgument, "journalSyncInterval must be positive; \(options.journalSyncInterval) was given")
        }
        let nanos = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        let journal = try await JournalRegistry.journal(path: path, syncIntervalNanos: max(nanos, 1_000_000))
        if journal.held.droppedBytes > 0 {
            Platform.writeToStandardError(
                "swift-multiprocessing: journal \(path): dropped a torn or corrupt tail of \(journal.held.droppedBytes) bytes (the program was killed while writing it); those items are computed again\n"
            )
        }
        let anyBuild = options.journalReusesOtherBuilds || Platform.environment("MP_JOURNAL_ANY_BUILD") == "1"
        // MP_JOURNAL_BUILD_ID stands in for the executable's build id: for tests that
        // simulate a rebuild, and for nothing else.
        let buildID = Platform.environment("MP_JOURNAL_BUILD_ID").map { Array($0.utf8) } ?? Platform.executableBuildID()
        let export = Platform.environment("MP_JOURNAL_EXPORT").flatMap { $0.isEmpty ? nil : $0 }
        return PoolJournal(journal: journal, anyBuild: anyBuild, buildID: buildID, exportPath: export)
    }

    init(journal: Journal, anyBuild: Bool, buildID: [UInt8], exportPath: String?) {
        self.journal = journal
        self.anyBuild = anyBuild
        self.buildID = buildID
        self.exportPath = exportPath
    }

    /// The one line a journaled call writes on stderr.
    func report(
        _ writer: JournalCallWriter, reused: Int, computed: Int, changed: Int, mismatch: String?
    ) {
        self.reused.add(reused, ordering: .relaxed)
        var why: [String] = []
        if let mismatch {
            why.append(mismatch)
        } else {
            if changed > 0 { why.append("\(changed) input\(changed == 1 ? "" : "s") changed") }
            if computed - changed > 0 { why.append("\(computed - changed) not in the journal") }
        }
        let name = writer.info.identity.functionType.split(separator: ".").last.map(String.init) ?? ""
        let counts =
            reused > 0
            ? "resumed: \(reused) item\(reused == 1 ? "" : "s") from the journal, \(computed) to go"
            : "\(computed) item\(computed == 1 ? "" : "s") to compute, none from the journal"
        Platform.writeToStandardError(
            "swift-multiprocessing: journal \(journal.path): call \(writer.info.ordinal) (\(writer.info.name) of \(name)): \(counts)\(why.isEmpty ? "" : " (\(why.joined(separator: "; ")))")\n"
        )
        // SIGUSR1 came while no journaled call was running: requeue now, before computing.
        if computed > 0 { Requeue.shared.callStarted() }
    }
}

/// The journal's side of one `map`, on the supervisor's loop thread: appends each chunk's
/// results as it arrives, before the consumer sees them, with its inputs' hashes (given
/// when the call took items from the journal, else computed from the chunk's inputs as
/// its results arrive: no array of hashes for the whole call).
final class MapJournalTap<F: WorkerFunction>: @unchecked Sendable {
    let writer: JournalCallWriter
    /// The call's item index of each computed item (`nil`: the same).
    let original: [Int]?
    /// Input hashes by computed item, when known before the call.
    private let hashes: [UInt64]?
    /// The computed items' inputs, when their hashes are not known.
    private let inputs: [F.Input]
    private var hasher = InputHasher<F.Input>()
    private var chunkHashes: [UInt64] = []

    init(writer: JournalCallWriter, original: [Int]?, hashes: [UInt64]?, inputs: [F.Input]) {
        self.writer = writer
        self.original = original
        self.hashes = hashes
        self.inputs = hashes == nil ? inputs : []
    }

    /// Journals the results among `events`.
    func deliver(_ events: [CallEvent]) {
        for event in events {
            if case .computed(let computed) = event {
                let range = computed.range
                record(writer, computed.chunk(as: F.Output.self), indices(range), inputHashes(range))
                continue
            }
            guard case .results(let header, let range, let payload, let offset, let worker) = event else { continue }
            record(writer, header, range, payload, offset, worker, indices(range), inputHashes(range), F.Output.self)
        }
    }

    private func indices(_ range: Range<Int>) -> JournalIndices {
        original.map { original in .listed(range.map { original[$0] }) } ?? .contiguous(range)
    }

    /// The hashes of the inputs of computed items `range`: given, or computed now.
    private func inputHashes(_ range: Range<Int>) -> ArraySlice<UInt64> {
        if let hashes { return hashes[range] }
        chunkHashes.removeAll(keepingCapacity: true)
        hasher.hash(inputs[range], into: &chunkHashes)
        return chunkHashes[...]
    }
}

/// Journals one chunk's results: all succeeded, its bytes as they came; else item by item.
func record<Output: Codable & Sendable>(
    _ writer: JournalCallWriter, _ header: Message.Result, _ range: Range<Int>, _ payload: [UInt8], _ offset: Int,
    _ worker: MultiprocessingError.WorkerIdentity, _ indices: JournalIndices, _ hashes: ArraySlice<UInt64>,
    _ type: Output.Type
) {
    let storedAsTheyCame = payload.withUnsafeBytes { raw in
        guard let outputs = ResultBody.encodedOutputs(header, body: UnsafeRawBufferPointer(rebasing: raw[offset...]))
        else { return false }
        writer.recordAllSucceeded(indices: indices, hashes: hashes, outputs: outputs)
        return true
    }
    if storedAsTheyCame { return }
    switch ResultsCore<Output>.decode(header, range, payload, offset, worker) {
    case .values(_, let outputs): writer.recordEach(indices: indices, hashes: hashes, outputs: outputs.map { $0 })
    case .mixed(_, let outcomes):
        writer.recordEach(indices: indices, hashes: hashes, outputs: outcomes.map { try? $0.get() })
    case .failed: break
    }
}

extension ProcessPool {
    /// `map` with the journal: takes what it holds, computes the rest as a call over the
    /// missing items only, merges.
    func journaledMap<F: WorkerFunction>(
        _ pool: PoolJournal, _ function: F, _ items: [F.Input], typeName: String, chunkSize: Int?,
        progress: ProgressMode?, name: String
    ) async throws -> [F.Output] {
        let identity = try JournalContents.identity(of: function, buildID: pool.buildID)
        let single = name == "apply"
        let lookup = pool.journal.held.lookup(identity, anyBuild: pool.anyBuild, as: F.Output.self, byHash: single)
        let writer = JournalCallWriter(journal: pool.journal, name: name, identity: identity, itemCount: items.count)
        if lookup.outputs.isEmpty {
            // Nothing to take: the whole call is computed, and journaled as it arrives.
            writer.progress.reused.store(0, ordering: .relaxed)
            pool.report(writer, reused: 0, computed: items.count, changed: 0, mismatch: lookup.mismatch)
            let tap = MapJournalTap<F>(writer: writer, original: nil, hashes: nil, inputs: items)
            let computed = try await runMap(
                function, items, typeName: typeName, chunkSize: chunkSize, progress: progress, tap: tap, merge: nil)
            exportIfAsked(pool, writer, computed)
            return computed
        }
        var hits = [F.Output?](repeating: nil, count: items.count)
        var missing: [Int] = []
        var missingHashes: [UInt64] = []
        var changed = 0
        do {
            var hasher = InputHasher<F.Input>()
            var all: [UInt64] = []
            all.reserveCapacity(items.count)
            hasher.hash(items[...], into: &all)
            missing.reserveCapacity(items.count)
            for (index, hash) in all.enumerated() {
                if let output = single ? lookup.byHash[hash] : lookup.output(at: index, hash: hash) {
                    hits[index] = output
                } else {
                    if lookup.isRecorded(index) && !single { changed += 1 }
                    missing.append(index)
                    missingHashes.append(hash)
                }
            }
        }
        writer.progress.reused.store(items.count - missing.count, ordering: .relaxed)
        pool.report(
            writer, reused: items.count - missing.count, computed: missing.count, changed: changed,
            mismatch: lookup.mismatch)
        if missing.isEmpty {
            let outputs = hits.map { $0! }
            exportIfAsked(pool, writer, outputs)
            return outputs
        }
        let whole = missing.count == items.count
        let tap = MapJournalTap<F>(writer: writer, original: whole ? nil : missing, hashes: missingHashes, inputs: [])
        let inputs = whole ? items : missing.map { items[$0] }
        let known = hits
        let computed = try await runMap(
            function, inputs, typeName: typeName, chunkSize: chunkSize, progress: progress, tap: tap,
            merge: whole
                ? nil
                : { partial in
                    var merged = known
                    for (position, output) in partial.enumerated() where output != nil {
                        merged[missing[position]] = output
                    }
                    return merged
                })
        if whole {
            exportIfAsked(pool, writer, computed)
            return computed
        }
        for (position, index) in missing.enumerated() { hits[index] = computed[position] }
        let outputs = hits.map { $0! }
        exportIfAsked(pool, writer, outputs)
        return outputs
    }

    private func exportIfAsked<Output: Encodable>(_ pool: PoolJournal, _ writer: JournalCallWriter, _ outputs: [Output])
    {
        guard let path = pool.exportPath else { return }
        do {
            _ = try JournalExport.append(outputs.map { $0 }, call: writer.info, to: path)
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing: could not export the call's results to \(path): \(describe(error))\n")
        }
    }
}

/// An error about computed item `itemIndex`, told about the call's item instead.
func remapped(_ error: MultiprocessingError, _ original: [Int]) -> MultiprocessingError {
    guard let sub = error.itemIndex, sub < original.count else { return error }
    let index = original[sub]
    return MultiprocessingError(
        error.code, error.message.replacingFirst("item \(sub) ", with: "item \(index) "), itemIndex: index,
        worker: error.worker, remoteErrorType: error.remoteErrorType,
        remoteErrorMessage: error.remoteErrorMessage, termination: error.termination,
        interruptSignal: error.interruptSignal, underlying: error.underlying)
}

/// Results as JSON lines (`MP_JOURNAL_EXPORT`, ``ProcessPool/exportJournal(_:function:to:anyBuild:)``).
enum JournalExport {
    /// Appends `{"call":C,"function":"T","index":I,"result":R}` per present output; returns how many.
    static func append<Output: Encodable>(_ outputs: [Output?], call: JournalCallInfo, to path: String) throws -> Int {
        let encoder = JSONEncoder()
        var text = ""
        var count = 0
        let function = String(decoding: try encoder.encode(call.identity.functionType), as: UTF8.self)
        for (index, output) in outputs.enumerated() {
            guard let output else { continue }
            let json = String(decoding: try encoder.encode(output), as: UTF8.self)
            text += "{\"call\":\(call.ordinal),\"function\":\(function),\"index\":\(index),\"result\":\(json)}\n"
            count += 1
        }
        let fd = try Platform.openForAppending(path)
        defer { Platform.close(fd) }
        try text.utf8CString.withUnsafeBytes { raw in
            try Platform.writeAll(fd, UnsafeRawBufferPointer(rebasing: raw.dropLast()))
        }
        return count
    }
}

extension ProcessPool {
    /// Items this pool's calls took from the journal instead of computing them (0 without
    /// a journal). See ``Options/journalPath``. In a job array's task that reduces, this counts the items of the shared call taken
    /// from the share journals (the other tasks' shares, and this task's own when resumed).
    public var itemsFromJournal: Int {
        (journal?.reused.load(ordering: .relaxed) ?? 0) + arrayReused.load(ordering: .relaxed)
    }

    /// Writes the results a journal holds for `function` (its type and state, this
    /// build's unless `anyBuild`) as JSON lines to `path`, appending
    /// `{"call":C,"function":"T","index":I,"result":R}` per item, in index order (the
    /// latest record of an index wins; inputs are not checked, since only the program
    /// has them). Only the program knows the output type, so this is a call in it;
    /// `MP_JOURNAL_EXPORT=path` does the same for each journaled `map` as it returns.
    ///
    /// - Returns: the number of lines written.
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when `journalPath` is not a
    ///   journal; ``MultiprocessingError/Code/systemCallFailed`` when a file cannot be read
    ///   or written; ``MultiprocessingError/Code/encodingFailed`` when the function cannot
    ///   be encoded. It starts no worker.
    public static func exportJournal<F: WorkerFunction>(
        _ journalPath: String, function: F, to path: String, anyBuild: Bool = false
    ) throws -> Int {
        let contents = try JournalContents.read(path: journalPath)
        let buildID = Platform.environment("MP_JOURNAL_BUILD_ID").map { Array($0.utf8) } ?? Platform.executableBuildID()
        let identity = try JournalContents.identity(of: function, buildID: buildID)
        let lookup = contents.lookup(identity, anyBuild: anyBuild, as: F.Output.self)
        let call = JournalCallInfo(key: 0, ordinal: 0, name: "export", identity: identity, itemCount: nil)
        return try JournalExport.append(lookup.outputs, call: call, to: path)
    }
}
