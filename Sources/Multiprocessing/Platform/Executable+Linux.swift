#if canImport(Glibc)
import Glibc
#endif

#if os(Linux)
extension Platform {
    /// The real path of this executable (`readlink /proc/self/exe`), or `nil` when it cannot
    /// be read (`readlink` does not fail with EINTR).
    static func resolvedExecutablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
