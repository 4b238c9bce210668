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
        var writer = ByteWriter()
        writer.write(fixed: UInt64(info.st_dev))
        writer.write(fixed: UInt64(info.st_ino))
        writer.write(fixed: Int64(info.st_size))
        writer.write(fixed: Int64(info.st_mtim.tv_sec))
        writer.write(fixed: Int64(info.st_mtim.tv_nsec))
        return writer.bytes
    }
}
#endif
