import Synchronization

/// What a journal holds for one call, by item index: the input hash and output of every
/// item it can serve.
struct JournalLookup<Output> {
    /// Per index: the recorded input hash (valid where `outputs` is not nil).
    var hashes: [UInt64] = []
    /// Per index: the recorded output.
    var outputs: [Output?] = []
    /// Why nothing could be reused, when no recorded call computes the same thing.
    var mismatch: String?
    /// Every recorded output by input hash, whatever its index (filled only when asked:
    /// for `apply`, whose one item is always index 0).
    var byHash: [UInt64: Output] = [:]

    /// The output recorded for `index` if its input hash is `hash`.
    func output(at index: Int, hash: UInt64) -> Output? {
        guard index < outputs.count, hashes[index] == hash else { return nil }
        return outputs[index]
    }

    /// Whether an output is recorded for `index` (whatever its input).
    func isRecorded(_ index: Int) -> Bool { index < outputs.count && outputs[index] != nil }
}

extension JournalContents {
    /// The identity of a call of `function`.
    /// - Throws: ``MultiprocessingError/Code/encodingFailed`` when the function cannot be encoded.
    static func identity<F: WorkerFunction>(of function: F, buildID: [UInt8]) throws(MultiprocessingError)
        -> JournalIdentity
    {
        var writer = ByteWriter()
        try BinaryCodec.encode(function, into: &writer)
        return JournalIdentity(
            functionType: String(reflecting: F.self), stateHash: JournalHash.hash(writer.bytes),
            outputType: String(reflecting: F.Output.self), buildID: buildID)
    }

    /// Every output recorded by calls with `identity` (any build when `anyBuild`), the
    /// latest record winning; or, when there is none, why.
    func lookup<Output: Decodable>(
        _ identity: JournalIdentity, anyBuild: Bool, as type: Output.Type, byHash: Bool = false
    ) -> JournalLookup<Output> {
        var lookup = JournalLookup<Output>()
        let matches = calls.filter {
            $0.identity.functionType == identity.functionType && $0.identity.outputType == identity.outputType
                && $0.identity.stateHash == identity.stateHash && (anyBuild || $0.identity.buildID == identity.buildID)
        }
        if matches.isEmpty {
            let sameFunction = calls.filter { $0.identity.functionType == identity.functionType }
            if sameFunction.isEmpty {
                lookup.mismatch = nil
            } else if !sameFunction.contains(where: { $0.identity.outputType == identity.outputType }) {
                lookup.mismatch = "its output type changed"
            } else if sameFunction.contains(where: { $0.identity.stateHash == identity.stateHash }) {
                lookup.mismatch = "the journal's results came from a different build of the program"
            } else {
                lookup.mismatch = "the function's state changed"
            }
            return lookup
        }
        let keys = Set(matches.map(\.key))
        var chunks: [JournalResults] = []
        for key in keys { chunks += results[key] ?? [] }
        chunks.sort { $0.hashesOffset < $1.hashesOffset }  // file order: the latest wins
        let size = (chunks.map(\.indices.last).max() ?? -1) + 1
        guard size > 0 else { return lookup }
        lookup.hashes = [UInt64](repeating: 0, count: size)
        lookup.outputs = [Output?](repeating: nil, count: size)
        contents.withUnsafeBytes { file in
            for chunk in chunks {
                var reader = ByteReader(UnsafeRawBufferPointer(rebasing: file[chunk.outputs]))
                let count = chunk.indices.count
                var outputs: [Output?]
                if chunk.status == 0 {
                    guard let all = try? BinaryCodec.decode([Output].self, from: &reader), all.count == count,
                        reader.isAtEnd
                    else { continue }
                    outputs = all
                } else {
                    outputs = []
                    outputs.reserveCapacity(count)
                    for _ in 0..<count {
                        guard let tag = try? reader.readByte() else { break }
                        if tag == 1, let output = try? BinaryCodec.decode(Output.self, from: &reader) {
                            outputs.append(output)
                        } else if tag == 0 {
                            outputs.append(nil)
                        } else {
                            break
                        }
                    }
                    guard outputs.count == count else { continue }
                }
                for position in 0..<count {
                    guard let output = outputs[position] else { continue }
                    let index = chunk.indices[position]
                    let hash = UInt64(
                        littleEndian: file.loadUnaligned(
                            fromByteOffset: chunk.hashesOffset + position * 8, as: UInt64.self))
                    lookup.hashes[index] = hash
                    lookup.outputs[index] = output
                    if byHash { lookup.byHash[hash] = output }
                }
            }
        }
        return lookup
    }
}

/// How far one journaled call is, for the requeue line ("K of N items done"): items
/// taken from the journal plus items journaled by this run, of the call's count (`nil`
/// for a stream of unknown length). Lives as long as the call's writer.
final class JournalCallProgress: Sendable {
    let total: Int?
    let reused = Atomic<Int>(0)
    let written = Atomic<Int>(0)

    init(total: Int?) { self.total = total }

    var done: Int { reused.load(ordering: .relaxed) + written.load(ordering: .relaxed) }
    /// Whether items are left to compute (always, for a stream of unknown length).
    var hasWorkLeft: Bool { total.map { done < $0 } ?? true }
}

/// The journaled calls in progress in this process, and how many items this run has
/// journaled: what a requeue before the time limit needs to know (`Requeue`).
enum JournalCallsInProgress {
    private static let calls = Mutex<[ObjectIdentifier: JournalCallProgress]>([:])
    /// Items journaled by this process (all journals, all calls).
    static let itemsWrittenThisRun = Atomic<Int>(0)

    static func began(_ progress: JournalCallProgress) { calls.withLock { $0[ObjectIdentifier(progress)] = progress } }
    static func ended(_ progress: JournalCallProgress) { calls.withLock { $0[ObjectIdentifier(progress)] = nil } }
    /// The calls in progress.
    static var current: [JournalCallProgress] { calls.withLock { Array($0.values) } }
}

/// Appends one call's records: its call record before its first results.
/// Used on one thread at a time (the supervisor's loop thread of the call's pool).
final class JournalCallWriter: @unchecked Sendable {
    let journal: Journal
    let info: JournalCallInfo
    let progress: JournalCallProgress
    private var wroteCall = false

    init(journal: Journal, name: String, identity: JournalIdentity, itemCount: Int?) {
        self.journal = journal
        let (key, ordinal) = journal.nextCall()
        info = JournalCallInfo(key: key, ordinal: ordinal, name: name, identity: identity, itemCount: itemCount)
        progress = JournalCallProgress(total: itemCount)
        JournalCallsInProgress.began(progress)
    }

    deinit { JournalCallsInProgress.ended(progress) }

    private func counted(_ items: Int) {
        progress.written.add(items, ordering: .relaxed)
        JournalCallsInProgress.itemsWrittenThisRun.add(items, ordering: .relaxed)
    }

    /// Records a chunk whose items all succeeded: `outputs` are the worker's bytes
    /// (`[Output]` in the binary codec), written as they are.
    func recordAllSucceeded(indices: JournalIndices, hashes: some Collection<UInt64>, outputs: UnsafeRawBufferPointer) {
        var writer = JournalRecord.resultsPayloadHead(
            callKey: info.key, indices: indices, hashes: hashes, status: 0, extra: outputs.count)
        writer.write(contentsOf: outputs)
        write(writer.bytes)
        counted(indices.count)
    }

    /// Records a chunk item by item (`nil` for an item that failed: it is not journaled).
    func recordEach<Output: Encodable>(indices: JournalIndices, hashes: some Collection<UInt64>, outputs: [Output?]) {
        var writer = JournalRecord.resultsPayloadHead(
            callKey: info.key, indices: indices, hashes: hashes, status: 1, extra: outputs.count * 9)
        for output in outputs {
            if let output {
                let mark = writer.count
                writer.write(UInt8(1))
                do {
                    try BinaryCodec.encode(output, into: &writer)
                    continue
                } catch {
                    writer.bytes.removeSubrange(mark...)
                }
            }
            writer.write(UInt8(0))
        }
        write(writer.bytes)
        counted(outputs.count { $0 != nil })
    }

    private func write(_ payload: [UInt8]) {
        if !wroteCall {
            wroteCall = true
            journal.append(payload: JournalRecord.callPayload(info))
        }
        journal.append(payload: payload)
    }
}
