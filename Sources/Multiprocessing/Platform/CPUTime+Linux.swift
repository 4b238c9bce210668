#if os(Linux)
import Glibc
import CMultiprocessingShim

/// The CPU time of other processes and of threads, from `/proc` (Linux).
extension Platform {
    /// Clock ticks per second, the unit of `/proc/…/stat`'s times (100 on Linux).
    static let clockTicksPerSecond = Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))

    /// The CPU time of process `pid` (a child of this process, running or exited and not
    /// yet reaped: a zombie keeps its final times); `nil` when it cannot be read. Its
    /// children's time is not included. Fields 14 and 15 of `/proc/<pid>/stat` (`utime`,
    /// `stime`, all its threads) count 10 ms clock ticks and truncate: 200 workers that
    /// each ran 5 ms read 0. So the total is the larger of those ticks and the main
    /// thread's nanoseconds on a CPU (`/proc/<pid>/schedstat`; a worker computes on its
    /// main thread), split into user and system as the ticks are.
    static func processCPUTime(pid: Int32) -> CPUSeconds? {
        cpuTime(of: "/proc/\(pid)")
    }

    /// The CPU time of thread `tid` of this process (``currentThreadID()``), from
    /// `/proc/self/task/<tid>/`'s `schedstat` and `stat` as above; `nil` when it cannot be
    /// read (the thread has ended).
    static func threadCPUTime(tid: Int32) -> CPUSeconds? {
        cpuTime(of: "/proc/self/task/\(tid)")
    }

    /// The CPU time of the process or thread whose `/proc` folder is `folder`: the larger of
    /// its `stat` ticks and its (main) thread's `schedstat` nanoseconds, split as the ticks
    /// are; the ticks alone where `schedstat` is missing (a kernel without CONFIG_SCHED_INFO).
    private static func cpuTime(of folder: String) -> CPUSeconds? {
        guard let ticks = cpuTime(statFile: folder + "/stat") else { return nil }
        guard let bytes = readSmallFile(folder + "/schedstat"),
            let first = bytes.split(separator: UInt8(ascii: " ")).first,
            let nanos = Int(decimal: first)
        else { return ticks }
        let tickTotal = ticks.user + ticks.system
        let total = max(Double(nanos) / 1e9, tickTotal)
        let userShare = tickTotal > 0 ? ticks.user / tickTotal : 1
        return CPUSeconds(user: total * userShare, system: total * (1 - userShare))
    }

    /// The calling thread's CPU time (`getrusage(RUSAGE_THREAD)`, microseconds).
    static func currentThreadCPUTime() -> CPUSeconds {
        var usage = rusage()
        // RUSAGE_THREAD (1), which Glibc's Swift module does not import.
        guard getrusage(__rusage_who_t(1), &usage) == 0 else { return .zero }
        return CPUSeconds(user: seconds(usage.ru_utime), system: seconds(usage.ru_stime))
    }

    /// The calling thread's kernel id (`gettid`).
    static func currentThreadID() -> Int32 {
        mp_gettid()
    }

    /// `utime` and `stime` of a `stat` file: the fields after the command name (which may
    /// hold spaces and parentheses, so the text is read from the last `)`).
    private static func cpuTime(statFile path: String) -> CPUSeconds? {
        guard let buffer = readSmallFile(path),
            let close = buffer.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        // After ") ": state(3) ppid(4) ... utime(14) stime(15): the 12th and 13th fields here.
        let fields = buffer[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 12, let user = Int(decimal: fields[11]), let system = Int(decimal: fields[12]) else {
            return nil
        }
        return CPUSeconds(
            user: Double(user) / clockTicksPerSecond, system: Double(system) / clockTicksPerSecond)
    }
}

extension Platform {
    /// The first KiB of a small `/proc` file, or `nil` when it cannot be read.
    fileprivate static func readSmallFile(_ path: String) -> ArraySlice<UInt8>? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        var length = 0
        while length < buffer.count {
            let n = buffer.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress! + length, raw.count - length)
            }
            if n < 0 {
                if mp_errno() == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            length += n
        }
        return buffer[..<length]
    }
}

extension Int {
    /// A non-negative decimal number in ASCII bytes.
    fileprivate init?(decimal bytes: ArraySlice<UInt8>) {
        guard !bytes.isEmpty else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ Int(byte - UInt8(ascii: "0"))
        }
        self = value
    }
}
#endif
