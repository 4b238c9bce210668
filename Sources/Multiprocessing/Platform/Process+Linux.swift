#if os(Linux)
import Glibc
import CMultiprocessingShim

/// Linux process handles: a pidfd becomes readable when its process exits, so the event
/// loop learns of a worker's death at once, without SIGCHLD handlers or polling.
extension Platform {
    /// The path that starts this very executable image (even if the file was replaced).
    static var currentExecutablePath: String { "/proc/self/exe" }

    static func openProcessHandle(_ pid: Int32) throws -> Int32 {
        try call("pidfd_open") { mp_pidfd_open(pid) }
    }

    /// Reaps the process behind `handle`; `nil` while it is still running (when `wait` is false).
    static func reap(_ handle: Int32, wait: Bool) throws -> ProcessTermination? {
        var code: Int32 = 0
        var status: Int32 = 0
        let reaped = try call("waitid") { mp_pidfd_reap(handle, wait ? 0 : 1, &code, &status) }
        guard reaped == 1 else { return nil }
        if code == CLD_EXITED { return .exited(status) }
        return .signaled(status)
    }

    /// Runs a short command (`scontrol`) to its end, with its standard output and error
    /// captured together; blocks the calling thread, which must be a thread of our own.
    /// Returns how it ended (`nil`: still running after `timeoutSeconds`, then killed)
    /// and what it printed.
    /// - Throws: ``MultiprocessingError/Code/spawnFailed`` when it cannot start;
    ///   ``MultiprocessingError/Code/systemCallFailed``.
    static func run(
        _ executable: String, _ arguments: [String], timeoutSeconds: Int
    ) throws -> (termination: ProcessTermination?, output: String) {
        let (readEnd, writeEnd) = try pipe()
        defer { close(readEnd) }
        let pid: Int32
        do {
            pid = try spawn(
                executable: executable, arguments: [executable] + arguments, environment: environmentStrings(),
                descriptors: [(writeEnd, 1), (writeEnd, 2)])
        } catch {
            close(writeEnd)
            throw error
        }
        close(writeEnd)
        let handle: Int32
        do {
            handle = try openProcessHandle(pid)
        } catch {
            kill(pid, SIGKILL)
            reapBlocking(pid)
            throw error
        }
        defer { close(handle) }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = monotonicNanos() + UInt64(max(timeoutSeconds, 1)) * 1_000_000_000
        var timedOut = false
        while true {
            let now = monotonicNanos()
            guard now < deadline else {
                timedOut = true
                break
            }
            var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = try call("poll") { Glibc.poll(&entry, 1, Int32(min((deadline - now) / 1_000_000 + 1, 60_000))) }
            if ready == 0 { continue }
            let n = try buffer.withUnsafeMutableBytes { try read(readEnd, into: $0.baseAddress!, count: $0.count) }
            if n == 0 { break }
            output += buffer[..<n]
        }
        if timedOut { kill(pid, SIGKILL) }
        let termination = try reap(handle, wait: true)
        return (timedOut ? nil : termination, String(decoding: output, as: UTF8.self))
    }

    /// The path of an executable found on `PATH`, or `nil`.
    static func findOnPath(_ name: String) -> String? {
        let path = environment("PATH") ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Asks the kernel to SIGKILL this process when the thread that spawned it exits.
    static func dieWithParentThread() {
        _ = mp_set_parent_death_signal(SIGKILL)
    }

    /// The GNU build id of this executable, or a fingerprint of the file when it has none.
    static func executableBuildID() -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 64)
        let length = Int(mp_executable_build_id(&buffer, Int32(buffer.count)))
        if length > 0 { return Array(buffer.prefix(length)) }
        var info = stat()
        guard stat(currentExecutablePath, &info) == 0 else { return [] }
        // Each field little-endian, 8 bytes (the same bytes Wire's `ByteWriter.write(fixed:)`
        // wrote here before; Platform sits below Wire and writes them itself).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(40)
        let fields: [UInt64] = [
            UInt64(info.st_dev), UInt64(info.st_ino), UInt64(bitPattern: Int64(info.st_size)),
            UInt64(bitPattern: Int64(info.st_mtim.tv_sec)), UInt64(bitPattern: Int64(info.st_mtim.tv_nsec)),
        ]
        for field in fields {
            withUnsafeBytes(of: field.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }
}
#endif
