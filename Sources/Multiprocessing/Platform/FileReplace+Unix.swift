import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Platform {
    /// Writes `bytes` as the whole new content of the file at `path`: into `path.tmp-PID`
    /// first, then renamed over `path`, so that a reader never sees half a file. Blocks:
    /// call it only from the library's own threads.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` naming the call and the path
    ///   (a missing directory, no permission, a full disk); the temporary file is removed.
    static func replaceFile(_ path: String, with bytes: [UInt8]) throws {
        let temporary = "\(path).tmp-\(processID)"
        let fd = try call("open(\(temporary))") {
            open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0) }
            close(fd)
            try call("rename(\(temporary), \(path))") { rename(temporary, path) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }
}
