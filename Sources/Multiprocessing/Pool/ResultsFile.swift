import FoundationEssentials

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// `JSONEncoder` (default settings). Items that had not finished are absent.
enum ResultsFile {
    /// Appends one line per result; returns how many were written.
    static func append<Output: Encodable>(_ results: [Output?], call: UInt64, to path: String) throws -> Int {
        let encoder = JSONEncoder()
        var text = ""
        var count = 0
        for (index, result) in results.enumerated() {
            guard let result else { continue }
            let json = try encoder.encode(result)
            text += "{\"call\":\(call),\"index\":\(index),\"result\":\(String(decoding: json, as: UTF8.self))}\n"
            count += 1
        }
        let fd = try Platform.call("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        defer { Platform.close(fd) }
        try text.utf8CString.withUnsafeBytes { raw in
            try Platform.writeAll(fd, UnsafeRawBufferPointer(rebasing: raw.dropLast()))
        }
        return count
    }
}
