import FoundationEssentials

/// Writes the results a call had received when the program was interrupted, so a Slurm
/// job that hits its time limit keeps its finished work.
///
/// Format: JSON Lines, appended to the file ``ProcessPool/Options/interruptResultsPath``
/// names, one line per finished item:
///
/// ```
/// {"call":1,"index":0,"result":0}
/// {"call":1,"index":3,"result":9}
/// ```
///
/// `call` numbers the pool's calls from 1 in the order they were made, `index` is the
/// item's 0-based index in that call's input, `result` is the output encoded with
/// `JSONEncoder` (default settings). Items that had not finished are absent, and so are
/// results JSON cannot hold (a NaN or an infinite `Double`, an `encode(to:)` that throws):
/// they are counted, not written.
enum ResultsFile {
    /// What ``append(_:call:to:)`` wrote.
    struct Outcome {
        /// Lines written.
        var written = 0
        /// Results that JSON could not hold, and the first one's index and reason.
        var unwritable = 0
        var firstUnwritable: (index: Int, reason: String)?
    }

    /// Appends one line per result that JSON can hold.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when the file cannot be
    ///   opened or written (then nothing is known to be written).
    static func append<Output: Encodable>(_ results: [Output?], call: UInt64, to path: String) throws -> Outcome {
        let encoder = JSONEncoder()
        var text = ""
        var outcome = Outcome()
        for (index, result) in results.enumerated() {
            guard let result else { continue }
            do {
                let json = try encoder.encode(result)
                text += "{\"call\":\(call),\"index\":\(index),\"result\":\(String(decoding: json, as: UTF8.self))}\n"
                outcome.written += 1
            } catch {
                outcome.unwritable += 1
                if outcome.firstUnwritable == nil { outcome.firstUnwritable = (index, describe(error)) }
            }
        }
        let fd = try Platform.openForAppendingOnly(path)
        defer { Platform.close(fd) }
        try text.utf8CString.withUnsafeBytes { raw in
            try Platform.writeAll(fd, UnsafeRawBufferPointer(rebasing: raw.dropLast()))
        }
        return outcome
    }

    /// Why `path` cannot be appended to, or nil when it can: opened for appending (never
    /// truncated, nothing written; non-blocking, so a FIFO without a reader fails instead of
    /// hanging). A file that did not exist is created to find out and
    /// removed again, so the check leaves nothing behind.
    static func problem(appendingTo path: String) -> String? {
        func failedCall(_ error: any Error) -> SystemCallError? {
            (error as? MultiprocessingError)?.underlying as? SystemCallError
        }
        do {
            try Platform.checkAppendable(path)
            return nil
        } catch {
            guard let call = failedCall(error) else { return describe(error) }
            return "\(call.call): \(Platform.errorString(call.errno))"
        }
    }
}
