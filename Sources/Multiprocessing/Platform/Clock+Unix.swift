#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall clock, for timestamps in what the library prints.
extension Platform {
    /// The calendar date and time now, in UTC (`time` and `gmtime_r`: no system call that
    /// can be interrupted; a failed conversion reads as the epoch).
    static func utcNow() -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var now = time(nil)
        var parts = tm()
        guard gmtime_r(&now, &parts) != nil else { return (1970, 1, 1, 0, 0, 0) }
        return (
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec)
        )
    }
}
