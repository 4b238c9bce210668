import Synchronization

/// The files of one array run, in ``ArrayShare/runDirectory`` on a file system every task
/// reads: `share-<i>.journal` (share i's journal), `share-<i>.done` (created once share
/// i's results are durable in its journal) and `reduce.claim` (created by the one task
/// that reduces). Blocking: used on threads of its own (``ArrayRun/offPool(_:_:)``).
struct ArrayRun: Sendable {
    let share: ArrayShare

    func journalPath(_ share: Int) -> String { self.share.runDirectory + "/share-\(share).journal" }
    func donePath(_ share: Int) -> String { self.share.runDirectory + "/share-\(share).done" }
    var claimPath: String { share.runDirectory + "/reduce.claim" }

    /// Creates the run's folder (its parent must exist).
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when it cannot be created.
    func prepare() throws {
        try Platform.makeDirectory(share.runDirectory)
    }

    /// Marks this task's share done (its results are durable in its journal): an existing
    /// mark (a resubmitted task) is kept.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when it cannot be written.
    func markDone(items: Int) throws {
        _ = try Platform.createExclusively(
            donePath(share.index), contents: "share \(share.index) of \(share.count): \(items) items\n")
    }

    /// The shares whose done mark is missing, in order (from the folder's listing, see
    /// ``Platform/listDirectory(_:)``).
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when the folder cannot be read.
    func missingShares() throws -> [Int] {
        let names = Set(try Platform.listDirectory(share.runDirectory))
        return (0..<share.count).filter { !names.contains("share-\($0).done") }
    }

    /// What claiming the reduction gave.
    enum Claim: Equatable {
        /// This task created the claim: it reduces.
        case won
        /// A claim by this same share was there: a task of this share reduced (or began to)
        /// before, and this is that task resubmitted, so it reduces again.
        case retaken
        /// Another share's task claimed it (the text of its claim): it reduces, not this one.
        case lost(String)
    }

    /// Claims the reduction: the first task to create `reduce.claim` reduces. The step is
    /// one `link` (``Platform/createExclusively(_:contents:)``), so of tasks that find every share done at the same
    /// moment exactly one wins; and since each task marks its share done before it looks
    /// at the others', the last two to finish cannot both miss each other's mark: at
    /// least one of them sees every share done.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed``.
    func claimReduction() throws -> Claim {
        let job = Platform.environment("SLURM_JOB_ID") ?? "none"
        let text = "share \(share.index) (job \(job), host \(Platform.shortHostName()), pid \(Platform.processID))\n"
        if try Platform.createExclusively(claimPath, contents: text) { return .won }
        let existing = String(decoding: try Platform.readFile(claimPath) ?? [], as: UTF8.self)
        if existing.hasPrefix("share \(share.index) ") { return .retaken }
        return .lost(existing.split(separator: "\n").first.map(String.init) ?? "another task")
    }

    /// Runs `body` on a thread of its own (the run's files may be on a network file system:
    /// never block the concurrency pool).
    static func offPool<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            do {
                try OSThread.start(name: name) { continuation.resume(returning: Result { try body() }) }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try result.get()
    }

    /// For tests only (`MP_ARRAY_TEST_RENDEZVOUS=<folder>`): after marking its share done,
    /// each task waits (up to two minutes) until every share's task has come this far, so
    /// that they all look at the marks and claim the reduction at the same moment.
    func rendezvousForTests() {
        guard let folder = Platform.environment("MP_ARRAY_TEST_RENDEZVOUS"), !folder.isEmpty else { return }
        _ = try? Platform.createExclusively(folder + "/\(share.index)", contents: "")
        let deadline = Platform.monotonicNanos() + 120_000_000_000
        while (0..<share.count).contains(where: { !Platform.fileExists(folder + "/\($0)") }) {
            guard Platform.monotonicNanos() < deadline else {
                Platform.writeToStandardError("swift-multiprocessing: array test rendezvous timed out\n")
                return
            }
            Platform.pause(microseconds: 2_000)
        }
    }
}

/// The process's array share: only the program's first `map`, `starmap`, stream or
/// `mapReduce` is shared across the array's tasks (after it, the program goes on in one
/// task only, so later calls run whole there).
enum ArrayTask {
    private static let taken = Atomic<Bool>(false)

    /// The share for this call when it is the program's first call and the program runs
    /// as a shared array task; `nil` otherwise.
    /// - Throws: the errors of ``ArrayShare/resolve(_:)``, at every call.
    static func takeShare() throws(MultiprocessingError) -> ArrayShare? {
        var environment: [String: String] = [:]
        for name in ArrayShare.variableNames {
            if let value = Platform.environment(name) { environment[name] = value }
        }
        guard environment["MP_ARRAY_SHARES"] != nil, environment["SLURM_ARRAY_TASK_ID"] != nil else { return nil }
        // A bad setup fails every call, not only the first (none runs whole by mistake).
        let share = try ArrayShare.resolve(environment)
        guard !taken.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        return share
    }

    /// Ends an array task whose share is done while the reduction is another task's: says
    /// why on stderr, flushes the program's output streams and exits with status 0,
    /// without running the rest of the program (nor its exit handlers: the task that
    /// reduces runs those). The caller closes the pool first.
    static func endTask(_ line: String) -> Never {
        Platform.writeToStandardError(line)
        Platform.exitFlushing(0)
    }
}

extension ProcessPool {
    /// The program's first call in an array task: computes this task's share of `items`,
    /// journaled in the run's folder (resuming what the share's journal holds), marks it
    /// done, and then either reduces (returns every item's output, taking the other
    /// shares' from their journals) or, while shares are missing or another task reduces,
    /// ends the task with status 0.
    ///
    /// - Throws: the errors of ``map(_:_:chunkSize:progress:)`` for this share's items
    ///   (their indices are the call's); ``MultiprocessingError/Code/invalidArgument`` when
    ///   the share's journal is in use by another process (the same task running twice);
    ///   ``MultiprocessingError/Code/systemCallFailed`` when the run's files cannot be written.
    func arrayMap<F: WorkerFunction>(
        _ share: ArrayShare, _ function: F, _ items: [F.Input], typeName: String, chunkSize: Int?,
        progress: ProgressMode?, name: String
    ) async throws -> [F.Output] {
        let run = ArrayRun(share: share)
        try await ArrayRun.offPool("mp-array") { try run.prepare() }
        let interval = Self.nanoseconds(options.journalSyncInterval)
        let journal = try await JournalRegistry.journal(
            path: run.journalPath(share.index), syncIntervalNanos: max(interval, 1_000_000))
        let anyBuild = options.journalReusesOtherBuilds || Platform.environment("MP_JOURNAL_ANY_BUILD") == "1"
        let buildID = Platform.environment("MP_JOURNAL_BUILD_ID").map { Array($0.utf8) } ?? Platform.executableBuildID()
        let identity = try JournalContents.identity(of: function, buildID: buildID)
        var hasher = InputHasher<F.Input>()
        var hashes: [UInt64] = []
        hashes.reserveCapacity(items.count)
        hasher.hash(items[...], into: &hashes)

        // This task's share: what its journal holds, then the rest computed.
        let mine = share.range(items: items.count)
        let held = journal.held.lookup(identity, anyBuild: anyBuild, as: F.Output.self)
        var outputs = [F.Output?](repeating: nil, count: items.count)
        var missing: [Int] = []
        for index in mine {
            if let output = held.output(at: index, hash: hashes[index]) {
                outputs[index] = output
            } else {
                missing.append(index)
            }
        }
        let resumed = mine.count - missing.count
        let prefix = "swift-multiprocessing: array share \(share.index) of \(share.count) (run \(share.key))"
        if !missing.isEmpty {
            let writer = JournalCallWriter(journal: journal, name: name, identity: identity, itemCount: items.count)
            // For a requeue at the time limit (README "Jobs that outlive their time limit"):
            // only this share's missing items are work left in this task.
            writer.progress.reused.add(items.count - missing.count, ordering: .relaxed)
            Requeue.shared.callStarted()
            try await computeArrayItems(
                function, items, missing, hashes, writer, typeName: typeName, chunkSize: chunkSize,
                progress: progress, into: &outputs)
        }
        await journal.sync()

        try await ArrayRun.offPool("mp-array") { try run.markDone(items: mine.count) }
        try await ArrayRun.offPool("mp-array") { run.rendezvousForTests() }
        let stillMissing = try await ArrayRun.offPool("mp-array") { try run.missingShares() }
        let done =
            "\(prefix): items \(mine.lowerBound)..<\(mine.upperBound) of \(items.count) done (\(missing.count) computed, \(resumed) from its journal)"
        if !stillMissing.isEmpty {
            await close()
            ArrayTask.endTask(
                "\(done); share\(stillMissing.count == 1 ? "" : "s") \(ArrayShare.describe(stillMissing)) still missing: this task ends here with status 0, and the task that completes the last missing share reduces and runs the rest of the program\n"
            )
        }
        let claim = try await ArrayRun.offPool("mp-array") { try run.claimReduction() }
        if case .lost(let owner) = claim {
            await close()
            ArrayTask.endTask(
                "\(done); every share is done and another task reduces (\(owner)): this task ends here with status 0\n")
        }

        // The reduction: every other share's items from its journal.
        var fromOthers = 0
        for other in 0..<share.count where other != share.index {
            let path = run.journalPath(other)
            let contents = try await ArrayRun.offPool("mp-array") { try JournalContents.read(path: path) }
            let lookup = contents.lookup(identity, anyBuild: anyBuild, as: F.Output.self)
            for index in ArrayShare.range(share: other, of: share.count, items: items.count) {
                if let output = lookup.output(at: index, hash: hashes[index]) {
                    outputs[index] = output
                    fromOthers += 1
                }
            }
        }
        let absent = outputs.indices.filter { outputs[$0] == nil }
        Platform.writeToStandardError(
            "\(done); every share is done\(claim == .retaken ? " (this share's task had claimed the reduction before: it reduces again)" : ""): this task reduces, with \(fromOthers) items from the other shares' journals\(absent.isEmpty ? "" : "; \(absent.count) items the journals do not hold (their inputs differ in this task) are computed here")\n"
        )
        if !absent.isEmpty {
            let writer = JournalCallWriter(journal: journal, name: name, identity: identity, itemCount: items.count)
            try await computeArrayItems(
                function, items, absent, hashes, writer, typeName: typeName, chunkSize: chunkSize,
                progress: progress, into: &outputs)
            await journal.sync()
        }
        arrayReused.add(resumed + fromOthers, ordering: .relaxed)
        return outputs.map { $0! }
    }

    /// Computes the items at `indices` (journaled under their call's indices) into `outputs`.
    private func computeArrayItems<F: WorkerFunction>(
        _ function: F, _ items: [F.Input], _ indices: [Int], _ hashes: [UInt64], _ writer: JournalCallWriter,
        typeName: String, chunkSize: Int?, progress: ProgressMode?, into outputs: inout [F.Output?]
    ) async throws {
        let tap = MapJournalTap<F>(
            writer: writer, original: indices, hashes: indices.map { hashes[$0] }, inputs: [])
        let known = outputs
        let computed = try await runMap(
            function, indices.map { items[$0] }, typeName: typeName, chunkSize: chunkSize, progress: progress,
            tap: tap,
            merge: { partial in
                var merged = known
                for (position, output) in partial.enumerated() where output != nil {
                    merged[indices[position]] = output
                }
                return merged
            })
        for (position, index) in indices.enumerated() { outputs[index] = computed[position] }
    }
}

/// The results of a stream that is an array task's shared call: the whole call's
/// outputs, once the share is done and this task reduces, yielded in index order
/// (``ProcessPool/arrayMap(_:_:_:typeName:chunkSize:progress:name:)`` ends the task
/// instead when it does not reduce). Used by one iterating task at a time.
final class ArrayResultsCore<Output: Decodable & Sendable>: @unchecked Sendable {
    private var compute: (@Sendable () async throws -> [Output])?
    private var outputs: [Output] = []
    private var next = 0

    init(_ compute: @escaping @Sendable () async throws -> [Output]) { self.compute = compute }

    func nextItem() async throws(MultiprocessingError) -> ItemResult<Output>? {
        if let compute {
            self.compute = nil
            do {
                outputs = try await compute()
            } catch {
                throw MultiprocessingError.from(error)
            }
        }
        guard next < outputs.count else { return nil }
        defer { next += 1 }
        return ItemResult(index: next, result: .success(outputs[next]))
    }
}
