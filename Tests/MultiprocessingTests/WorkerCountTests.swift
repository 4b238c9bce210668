import Foundation
import Testing

@testable import Multiprocessing

@Suite("Default worker count (CPU rules)")
struct WorkerCountTests {
    let unbound = WorkerCount.SystemCPUs(affinity: 8, online: 8)
    let bound = WorkerCount.SystemCPUs(affinity: 2, online: 8)

    func resolve(_ environment: [String: String], _ cpus: WorkerCount.SystemCPUs, explicit: Int? = nil) -> WorkerCount {
        WorkerCount.resolve(explicit: explicit, environment: environment, cpus: cpus)
    }

    @Test func affinityMaskByDefault() {
        let decision = resolve([:], bound)
        #expect(decision.count == 2)
        #expect(decision.source == .affinityMask)
        #expect(decision.reason == "this process may run on 2 CPUs (its affinity mask)")
        #expect(decision.warnings.isEmpty)
    }

    @Test func explicitBeatsOverrideBeatsRules() {
        let environment = ["MP_WORKERS": "6", "SLURM_CPUS_PER_TASK": "1"]
        #expect(resolve(environment, bound, explicit: 3).count == 3)
        #expect(resolve(environment, bound, explicit: 3).source == .explicit)
        #expect(resolve(environment, bound).count == 6)
        #expect(resolve(environment, bound).source == .environmentOverride)
    }

    @Test func cpusPerTaskBelowMaskLowersIt() {
        let decision = resolve(["SLURM_CPUS_PER_TASK": "3"], unbound)
        #expect(decision.count == 3)
        #expect(decision.source == .slurmCPUsPerTask)
        #expect(decision.warnings.isEmpty)
    }

    @Test("SLURM_CPUS_PER_TASK above the mask (Slurm 22.05 srun) loses to the mask, with a warning")
    func cpusPerTaskAboveMaskWarns() {
        let decision = resolve(["SLURM_CPUS_PER_TASK": "4"], WorkerCount.SystemCPUs(affinity: 1, online: 8))
        #expect(decision.count == 1)
        #expect(decision.source == .affinityMask)
        #expect(
            decision.warnings == [
                "SLURM_CPUS_PER_TASK=4 but this job step may only run on 1 CPU (its affinity mask); using 1. Slurm 22.05's srun does not pass -c on to steps: run `srun -c 4 ...` (or export SRUN_CPUS_PER_TASK=4) to give the step all of them"
            ])
    }

    @Test func cpusOnNodeBoundsOnlyWithoutBindingAndWithoutCPUsPerTask() {
        #expect(resolve(["SLURM_CPUS_ON_NODE": "3"], unbound).count == 3)
        #expect(resolve(["SLURM_CPUS_ON_NODE": "3"], unbound).source == .slurmCPUsOnNode)
        #expect(resolve(["SLURM_CPUS_ON_NODE": "1"], bound).count == 2, "a bound process trusts its mask")
        #expect(resolve(["SLURM_CPUS_ON_NODE": "3", "SLURM_CPUS_PER_TASK": "5"], unbound).count == 5)
    }

    @Test("bad values are named in a warning and ignored", arguments: ["abc", "0", "-2", "", " "])
    func badValues(value: String) {
        for name in ["MP_WORKERS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"] {
            let decision = resolve([name: value], unbound)
            #expect(decision.count == 8)
            #expect(decision.source == .affinityMask)
            #expect(decision.warnings.count == 1)
            #expect(decision.warnings.first?.hasPrefix("\(name)='\(value)' is ignored: ") == true)
        }
        #expect(
            resolve(["MP_WORKERS": "abc"], unbound).warnings == [
                "MP_WORKERS='abc' is ignored: it is not a whole number; set it to a positive whole number or unset it"
            ])
        #expect(
            resolve(["MP_WORKERS": "0"], unbound).warnings == [
                "MP_WORKERS='0' is ignored: it is not positive; set it to a positive whole number or unset it"
            ])
    }

    @Test func cgroupQuotaCapsTheMask() {
        let decision = resolve([:], WorkerCount.SystemCPUs(affinity: 8, online: 8, cgroupQuota: 2.5))
        #expect(decision.count == 3)
        #expect(decision.source == .cgroupQuota)
        #expect(
            resolve(["SLURM_CPUS_PER_TASK": "2"], WorkerCount.SystemCPUs(affinity: 8, online: 8, cgroupQuota: 2.5))
                .count == 2)
    }

    @Test func cgroupFilesAreRead() {
        let files = [
            "/fake/cpu.max": "max 100000\n",
            "/fake/job/cpu.max": "150000 100000\n",
            "/fake/job/step/cpu.max": "max 100000\n",
            "/v1/cpu,cpuacct/slurm/cpu.cfs_quota_us": "200000\n",
            "/v1/cpu,cpuacct/slurm/cpu.cfs_period_us": "100000\n",
            "/v1/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "/v1/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        ]
        #expect(CgroupQuota.cpus(root: "/fake", selfCgroup: "0::/job/step\n", read: { files[$0] }) == 1.5)
        #expect(CgroupQuota.cpus(root: "/v1", selfCgroup: "4:cpu,cpuacct:/slurm\n0::/\n", read: { files[$0] }) == 2.0)
        #expect(CgroupQuota.cpus(root: "/fake", selfCgroup: "0::/\n", read: { files[$0] }) == nil)
    }

    @Test("in a real process: environment values, and a mask narrowed with taskset")
    func realProcess() async throws {
        let online = ProcessInfo.processInfo.activeProcessorCount
        let plain = try await FixtureProcess.run(["cpus", "1"], waitingFor: "the default worker count")
        #expect(plain.lines.first == "count \(online) source affinity mask", "\(plain.stdout)")
        #expect(plain.line("pool") == "pool \(online)")

        let narrowed = try await FixtureProcess.run(
            ["cpus", "1"], launcher: ["/usr/bin/taskset", "-c", "0"], waitingFor: "the count under taskset")
        #expect(narrowed.lines.first == "count 1 source affinity mask")
        #expect(narrowed.line("pool") == "pool 1")

        let slurm = try await FixtureProcess.run(
            ["cpus", "1"], environment: ["SLURM_CPUS_PER_TASK": "4"], launcher: ["/usr/bin/taskset", "-c", "0"],
            waitingFor: "the count with SLURM_CPUS_PER_TASK above the mask")
        #expect(slurm.lines.first == "count 1 source affinity mask")
        #expect(
            slurm.stderr.contains(
                "swift-multiprocessing: warning: SLURM_CPUS_PER_TASK=4 but this job step may only run on 1 CPU"))
        #expect(slurm.stderr.components(separatedBy: "warning:").count == 2, "the warning is printed once")

        let override = try await FixtureProcess.run(
            ["cpus", "1"], environment: ["MP_WORKERS": "3"], waitingFor: "MP_WORKERS")
        #expect(override.lines.first == "count 3 source MP_WORKERS")
        #expect(override.line("pool") == "pool 3")

        let bad = try await FixtureProcess.run(
            ["cpus", "0"], environment: ["MP_WORKERS": "abc"], waitingFor: "a bad MP_WORKERS")
        #expect(bad.lines.first == "count \(online) source affinity mask")
        #expect(
            bad.line("warning")
                == "warning MP_WORKERS='abc' is ignored: it is not a whole number; set it to a positive whole number or unset it"
        )
    }
}
