import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Regular-file operations (the journal's), each through ``Platform/call(_:_:)``.
/// They block: call them only from the library's own threads.
extension Platform {
    /// Opens (creating it, mode 0644) a file for reading and appending, close-on-exec.
    static func openForAppending(_ path: String) throws -> Int32 {
        try call("open(\(path))") { open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
    }

    /// Opens (creating it, mode 0644) a file for appending only, close-on-exec (write
    /// permission is enough, unlike ``openForAppending(_:)``).
    static func openForAppendingOnly(_ path: String) throws -> Int32 {
        try call("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
    }

    /// Checks that `path` can be appended to, writing nothing and truncating nothing: it is
    /// opened for appending without blocking (a FIFO without a reader fails instead of
    /// hanging); a file that did not exist is created to find out and removed again.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` naming the call that failed.
    static func checkAppendable(_ path: String) throws {
        if let fd = try call("open", allowing: ENOENT, { open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC) }) {
            close(fd)
            return
        }
        let fd = try call("open") { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC, 0o644) }
        close(fd)
        try call("unlink") { unlink(path) }
    }

    /// Opens an existing file for reading, close-on-exec.
    static func openForReading(_ path: String) throws -> Int32 {
        try call("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) }
    }

    /// Takes an exclusive advisory lock on an open file without waiting; `false` when
    /// another process holds it.
    static func tryLockExclusively(_ fd: Int32) throws -> Bool {
        try callNonBlocking("flock") { flock(fd, LOCK_EX | LOCK_NB) } != nil
    }

    /// The whole content of an open file, read from its start.
    static func readWholeFile(_ fd: Int32) throws -> [UInt8] {
        var info = stat()
        try call("fstat") { fstat(fd, &info) }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { raw in
                try call("pread") { pread(fd, raw.baseAddress! + offset, raw.count - offset, off_t(offset)) }
            }
            if n == 0 { break }
            offset += n
        }
        if offset < bytes.count { bytes.removeSubrange(offset...) }
        return bytes
    }

    /// Cuts an open file to `length` bytes.
    static func truncate(_ fd: Int32, to length: Int) throws {
        try call("ftruncate") { ftruncate(fd, off_t(length)) }
    }

    /// Makes what was written to an open file durable (`fsync`).
    static func sync(_ fd: Int32) throws {
        try call("fsync") { fsync(fd) }
    }

    /// Makes a new file's directory entry durable (`fsync` of its directory).
    static func syncDirectory(of path: String) {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
