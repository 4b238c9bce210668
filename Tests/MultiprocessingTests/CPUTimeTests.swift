import Foundation
import Testing

@testable import Multiprocessing

/// A worker's CPU time as the report reads it (``PoolReport/workersCPU``): exact to well
/// under a clock tick, so that 200 workers that each ran a few milliseconds do not read 0.
@Suite("CPU time of a child", .timeLimit(.minutes(1)))
struct CPUTimeTests {
    @Test("a child that ran a few ms reads its time, not whole 10 ms ticks, before it is reaped")
    func shortChild() throws {
        // A shell loop: a few milliseconds of CPU on one thread.
        let pid = try Platform.spawn(
            executable: "/bin/sh",
            arguments: ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"],
            environment: [], descriptors: [])
        // Wait until it is a zombie: it ended, and its times are still readable.
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            if let close = stat.lastIndex(of: ")"), stat[close...].dropFirst(2).first == "Z" { break }
            usleep(1_000)
        }
        let ours = Platform.processCPUTime(pid: pid)
        var status: Int32 = 0
        var usage = rusage()
        #expect(wait4(pid, &status, 0, &usage) == pid)
        let truth =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let total = (ours?.user ?? -1) + (ours?.system ?? 0)
        #expect(truth > 0.001, "the loop ran \(truth) s of CPU")
        #expect(abs(total - truth) <= 0.002 + 0.1 * truth, "read \(total) s, the kernel's rusage says \(truth) s")
    }
}
