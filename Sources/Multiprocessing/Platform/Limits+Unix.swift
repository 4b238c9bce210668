import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The open-file limit (`ulimit -n`), which bounds how many workers a pool can hold.
extension Platform {
    /// This process's open-file limit: the soft limit (what applies) and the hard limit
    /// (how far the process may raise it).
    static func openFileLimit() -> (soft: Int, hard: Int) {
        var value = rlimit()
        guard getrlimit(openFilesResource, &value) == 0 else { return (Int.max, Int.max) }
        return (clamp(value.rlim_cur), clamp(value.rlim_max))
    }

    /// Raises the soft open-file limit to `soft` (at most the hard limit); returns whether
    /// it now is at least `soft`.
    static func raiseOpenFileLimit(to soft: Int) -> Bool {
        var value = rlimit()
        guard getrlimit(openFilesResource, &value) == 0 else { return false }
        if clamp(value.rlim_cur) >= soft { return true }
        guard clamp(value.rlim_max) >= soft else { return false }
        value.rlim_cur = rlim_t(soft)
        return setrlimit(openFilesResource, &value) == 0
    }

    /// How many descriptors this process has open (the entries of `/proc/self/fd`, less
    /// the one that reads it); 0 where that directory does not exist.
    static func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != CChar(truncatingIfNeeded: 0x2E) { count += 1 }  // not "." or ".."
        }
        return max(count - 1, 0)
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int.max) ? Int.max : Int(value)  // RLIM_INFINITY is all ones
    }

    #if canImport(Glibc)
    private static let openFilesResource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let openFilesResource = RLIMIT_NOFILE
    #endif
}
