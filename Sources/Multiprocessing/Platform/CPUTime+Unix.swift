#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CPU time: this process's (``processCPUTime()``); other processes' and threads' in the
/// `+Linux` file beside this one.
extension Platform {
    /// User and system CPU seconds.
    struct CPUSeconds: Sendable, Equatable {
        var user: Double
        var system: Double

        static let zero = CPUSeconds(user: 0, system: 0)

        static func + (a: CPUSeconds, b: CPUSeconds) -> CPUSeconds {
            CPUSeconds(user: a.user + b.user, system: a.system + b.system)
        }

        static func - (a: CPUSeconds, b: CPUSeconds) -> CPUSeconds {
            CPUSeconds(user: a.user - b.user, system: a.system - b.system)
        }
    }

    /// The CPU time of this whole process so far, every thread of it, ended ones included
    /// (`getrusage(RUSAGE_SELF)`, microseconds). Zero if the call fails (it cannot, with
    /// these arguments).
    static func processCPUTime() -> CPUSeconds {
        var usage = rusage()
        #if canImport(Glibc)
        let who = __rusage_who_t(RUSAGE_SELF.rawValue)
        #else
        let who = RUSAGE_SELF
        #endif
        guard getrusage(who, &usage) == 0 else { return .zero }
        return CPUSeconds(user: seconds(usage.ru_utime), system: seconds(usage.ru_stime))
    }

    static func seconds(_ value: timeval) -> Double {
        Double(value.tv_sec) + Double(value.tv_usec) / 1e6
    }
}
