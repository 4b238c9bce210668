/// What a journal file holds, for `mp journal`: its calls, grouped by what they compute.
public struct JournalSummary: Sendable {
    /// The calls that computed the same thing (function type and state, output type,
    /// build), over every run that wrote to the journal.
    public struct Call: Sendable {
        /// The first run's ordinal of the call (its place among the journaled calls of that run, from 0).
        public let ordinal: Int
        /// `map`, `imap`, `imapUnordered` or `mapReduce` (`starmap` and `apply` are `map`s).
        public let name: String
        /// The function's type.
        public let functionType: String
        /// The output type.
        public let outputType: String
        /// The first 16 hex digits of the hash of the function's encoded state.
        public let state: String
        /// The build id of the program that wrote it, in hex.
        public let build: String
        /// The call's item count, when it was known (`nil` for a stream of unknown length).
        public let itemCount: Int?
        /// Distinct items whose results are recorded.
        public let itemsRecorded: Int
        /// How many runs wrote records for it.
        public let runs: Int
    }

    /// The calls, in the order they first appear.
    public let calls: [Call]
    /// Bytes of a torn or corrupt tail after the last valid record (dropped and cut off
    /// when a pool next opens the journal); 0 when the file ends cleanly.
    public let tornBytes: Int
    /// The size of the valid records.
    public let validBytes: Int

    /// Reads the journal at `path` without changing it.
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when the file is not a
    ///   journal; ``MultiprocessingError/Code/systemCallFailed`` when it cannot be read.
    public static func read(path: String) throws -> JournalSummary {
        let contents = try JournalContents.read(path: path)
        var groups: [JournalIdentity: [JournalCallInfo]] = [:]
        var order: [JournalIdentity] = []
        for call in contents.calls {
            if groups[call.identity] == nil { order.append(call.identity) }
            groups[call.identity, default: []].append(call)
        }
        let calls = order.map { identity -> Call in
            let infos = groups[identity]!
            var seen = Set<Int>()
            for info in infos {
                for chunk in contents.results[info.key] ?? [] {
                    for position in 0..<chunk.indices.count { seen.insert(chunk.indices[position]) }
                }
            }
            let hex = { (bytes: [UInt8]) in
                bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
                    .joined()
            }
            var state = identity.stateHash.littleEndian
            let stateBytes = withUnsafeBytes(of: &state) { Array($0) }
            return Call(
                ordinal: Int(infos[0].ordinal), name: infos[0].name, functionType: identity.functionType,
                outputType: identity.outputType, state: hex(stateBytes), build: hex(identity.buildID),
                itemCount: infos.last!.itemCount, itemsRecorded: seen.count, runs: infos.count)
        }
        return JournalSummary(calls: calls, tornBytes: contents.droppedBytes, validBytes: contents.contents.count)
    }
}
