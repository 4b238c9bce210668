import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file operations of a job array's run folder, which every task of the array reads
/// and writes on a shared file system. They block (a network file system may take long):
/// call them only from the library's own threads.
extension Platform {
    /// Creates a folder (mode 0755) unless it exists.
    static func makeDirectory(_ path: String) throws {
        _ = try call("mkdir(\(path))", allowing: EEXIST) { mkdir(path, 0o755) }
    }

    /// Like ``call(_:_:)`` but returns `nil` instead of throwing when errno is `allowed`.
    static func call<T: BinaryInteger>(_ name: @autoclosure () -> String, allowing allowed: Int32, _ body: () -> T)
        throws -> T?
    {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = mp_errno()
            if code == EINTR { continue }
            if code == allowed { return nil }
            throw systemError(name(), code)
        }
    }

    /// Creates `path` with `contents` only if no file of that name exists, in one atomic
    /// step: of several processes trying at once, exactly one gets `true`, and the name
    /// never appears without its whole contents. The contents go to a file of a unique
    /// name first (written and `fsync`ed), which is then `link`ed to `path` (atomic on
    /// local file systems and on NFS, where `O_EXCL` is not before NFSv3; a `link` whose
    /// reply was lost is recognised by the link count, as `open(2)` advises).
    static func createExclusively(_ path: String, contents: String) throws -> Bool {
        let temporary = "\(path).\(shortHostName()).\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
        let fd = try call("open(\(temporary))") { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        defer { unlink(temporary) }
        do {
            defer { close(fd) }
            try Array(contents.utf8).withUnsafeBytes { try writeAll(fd, $0) }
            try sync(fd)
        }
        while link(temporary, path) != 0 {
            let code = mp_errno()
            if code == EINTR { continue }
            if code == EEXIST { return false }
            var info = stat()
            if stat(temporary, &info) == 0 && info.st_nlink == 2 { break }
            throw systemError("link(\(temporary), \(path))", code)
        }
        syncDirectory(of: path)
        return true
    }

    /// The names in a folder (without `.` and `..`). Read from the folder itself, not looked
    /// up one by one: on NFS, opening a folder revalidates it with the server, whereas a
    /// lookup of a name another node has just created may be answered from a cache that
    /// still says it does not exist.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when it cannot be opened.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw systemError("opendir(\(path))", mp_errno()) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Sleeps the calling thread (one of the library's own) for about `microseconds`.
    static func pause(microseconds: UInt32) { usleep(microseconds) }

    /// Whether a file of that name exists.
    static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The whole content of a file, or `nil` when it does not exist.
    static func readFile(_ path: String) throws -> [UInt8]? {
        guard let fd = try call("open(\(path))", allowing: ENOENT, { open(path, O_RDONLY | O_CLOEXEC) }) else {
            return nil
        }
        defer { close(fd) }
        return try readWholeFile(fd)
    }
}
