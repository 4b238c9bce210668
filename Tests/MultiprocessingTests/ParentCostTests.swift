import Testing

@testable import Multiprocessing

/// The parent's CPU time next to the workers' in ``PoolReport`` (``PoolReport/parentCPU``,
/// ``PoolReport/workersCPU``, ``PoolReport/parentShare``): what the pool itself costs.
@Suite("Parent cost", .timeLimit(.minutes(3)))
struct ParentCostTests {
    /// The `cpu …` line of the `parent-cpu` scenario, as numbers (and the engine's name).
    struct Figures {
        var values: [String: Double] = [:]
        var engine = ""
        var slots: [Double?] = []

        init(_ outcome: FixtureProcess.Outcome) {
            for field in outcome.line("cpu ").split(separator: " ").dropFirst() {
                let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                switch parts[0] {
                case "engine": engine = parts[1]
                case "slots": slots = parts[1].split(separator: ",").map { Double($0) }
                default: values[parts[0]] = Double(parts[1])
                }
            }
        }

        subscript(_ name: String) -> Double { values[name] ?? .nan }
    }

    /// The number of worker processes the map's items ran in (`map processes=N values=...`),
    /// or -1 when the map's results are not its inputs (BurnCPU and SleepItem return theirs).
    func processes(_ outcome: FixtureProcess.Outcome) -> Int {
        let values = outcome.ints("values", on: "map ") ?? []
        guard !values.isEmpty, values == Array(0..<values.count) else { return -1 }
        return outcome.int("processes", on: "map ") ?? -1
    }

    /// 24 items of 40 ms of CPU each: 0.96 s of work.
    static let work = 0.96

    @Test("a map that burns CPU in workers: workers' CPU time is the work, the parent's share is small")
    func burningWorkers() async throws {
        let outcome = try await FixtureProcess.run(["parent-cpu", "0", "24", "40", "0"], waitingFor: "a CPU-bound map")
        let figures = Figures(outcome)
        #expect(processes(outcome) == 2, "\(outcome.stdout)\(outcome.stderr)")
        #expect(figures.engine == "processes")
        // /proc's times count in 10 ms ticks; a worker's own start-up adds a little.
        #expect(
            figures["workers_total"] >= Self.work - 0.03 && figures["workers_total"] <= Self.work + 0.3,
            "\(outcome.stdout)")
        #expect(figures["workers_user"] > figures["workers_system"])
        #expect(abs(figures["workers_user"] + figures["workers_system"] - figures["workers_total"]) < 1e-9)
        // Each slot holds its worker's time, and they add up to the total.
        #expect(figures.slots.count == 2 && figures.slots.allSatisfy { ($0 ?? 0) > 0.2 }, "\(outcome.stdout)")
        #expect(abs(figures.slots.compactMap { $0 }.reduce(0, +) - figures["workers_total"]) < 1e-9)
        // The parent handed out 24 chunks and read 24 results: milliseconds.
        #expect(figures["parent_total"] > 0 && figures["parent_total"] < 0.15, "\(outcome.stdout)")
        #expect(abs(figures["parent_user"] + figures["parent_system"] - figures["parent_total"]) < 1e-9)
        let share = figures["parent_total"] / (figures["parent_total"] + figures["workers_total"])
        #expect(abs(figures["share"] - share) < 1e-9 && figures["share"] < 0.15)
        // The printed report says the same.
        let line = outcome.line("report:   cpu: parent ")
        #expect(line.contains("; the whole process), workers ") && line.contains("; parent share "), "\(line)")
        #expect(outcome.line("report:   worker 0 on ").contains(", cpu "))
    }

    @Test("workers that were recycled are counted: their time is read before they are reaped")
    func recycledWorkersCount() async throws {
        let outcome = try await FixtureProcess.run(
            ["parent-cpu", "0", "24", "40", "3"], waitingFor: "a CPU-bound map with recycled workers")
        let figures = Figures(outcome)
        #expect(processes(outcome) >= 6, "\(outcome.stdout)\(outcome.stderr)")  // 3 items each: about 8
        #expect(
            figures["workers_total"] >= Self.work - 0.05 && figures["workers_total"] <= Self.work + 0.5,
            "\(outcome.stdout)")
        #expect(figures["parent_total"] < 0.2, "\(outcome.stdout)")
    }

    @Test("a parent that waits for sleeping workers uses almost no CPU (no busy wait), and neither do they")
    func idleParent() async throws {
        let outcome = try await FixtureProcess.run(
            ["parent-cpu", "0", "20", "-50", "0"], waitingFor: "a map of sleeping items")
        let figures = Figures(outcome)
        #expect(processes(outcome) == 2, "\(outcome.transcript)")
        #expect(outcome.ints("values", on: "map ")?.count == 20, "\(outcome.transcript)")
        // 0.5 s of waiting: a parent that spun would show about that much.
        #expect(figures["parent_total"] < 0.1, "\(outcome.stdout)")
        #expect(figures["workers_total"] < 0.1, "\(outcome.stdout)")
    }

    @Test("threads engine: the workers are the slots' threads; the parent's time is the whole process, theirs included")
    func threadsEngine() async throws {
        let outcome = try await FixtureProcess.run(
            ["parent-cpu", "1", "24", "40", "0"], waitingFor: "a CPU-bound map on threads")
        let figures = Figures(outcome)
        #expect(figures.engine == "threads", "\(outcome.stdout)\(outcome.stderr)")
        #expect(processes(outcome) == 1, "\(outcome.transcript)")
        #expect(outcome.ints("values", on: "map ")?.count == 24, "\(outcome.transcript)")
        #expect(
            figures["workers_total"] >= Self.work - 0.03 && figures["workers_total"] <= Self.work + 0.2,
            "\(outcome.stdout)")
        #expect(figures["parent_total"] >= figures["workers_total"] - 0.03, "\(outcome.stdout)")
        let share = max(figures["parent_total"] - figures["workers_total"], 0) / figures["parent_total"]
        #expect(abs(figures["share"] - share) < 1e-9 && figures["share"] < 0.15)
        #expect(outcome.line("report:   cpu: parent ").contains("its worker threads included"))
    }

    @Test("a consumer slower than the workers wakes the pool's event loop once per half window, not per chunk")
    func slowConsumerWakesLoopRarely() async throws {
        // 400 one-item chunks, the consumer 1 ms per item: the window (8 chunks) stays full.
        // Each consumed chunk woke the loop (an eventfd write), and each result did too:
        // 2.5 wakeups per item measured before; about 0.65 with the credit.
        let outcome = try await FixtureProcess.run(
            ["slow-consumer", "400", "1000"], waitingFor: "a stream with a slow consumer")
        #expect(outcome.int("items", on: "stream ") == 400, "\(outcome.transcript)")
        #expect(outcome.int("sum", on: "stream ") == (0..<400).reduce(0) { $0 + $1 * $1 }, "\(outcome.transcript)")
        let perItem = Double(outcome.line("loop wakeups per item ").split(separator: " ").last ?? "") ?? .nan
        #expect(perItem > 0 && perItem < 1.3, "\(outcome.stdout)")
    }

    @Test("stream credit: the consumer wakes the engine once, when it has counted what the engine asked for")
    func streamCredit() {
        let credit = StreamCredit()
        #expect(!credit.add(1))  // nobody asked
        #expect(credit.take() == 1 && credit.take() == 0)
        credit.requestWake(after: 3)
        #expect(!credit.add(1) && !credit.add(1))
        #expect(credit.add(1))  // the third: wake
        #expect(!credit.add(1))  // once
        #expect(credit.take() == 4)
        // Counted just before the engine asked: the engine's own take after asking sees it.
        #expect(!credit.add(2))
        credit.requestWake(after: 4)
        #expect(credit.take() == 2)
        #expect(!credit.add(3) && credit.add(1))
    }

    @Test("the report adds ended and running workers' time per slot, and leaves remote slots out")
    func statisticsArithmetic() {
        var statistics = PoolStatistics(workers: 2)
        statistics.workerEnded(slot: 0, cpu: .init(user: 1.5, system: 0.25))
        statistics.workerEnded(slot: 0, cpu: .init(user: 0.5, system: 0.25))
        statistics.workerEnded(slot: 1, cpu: nil)  // unreadable: nothing added
        statistics.addSlot(host: "node2")
        statistics.workerEnded(slot: 2, cpu: .init(user: 9, system: 9))  // remote: not counted
        let report = statistics.report(liveCPU: [(1, .init(user: 0.75, system: 0)), (2, .init(user: 5, system: 5))])
        #expect(report.workers.map { $0.cpu?.userSeconds } == [2.0, 0.75, nil])
        #expect(report.workers.map { $0.cpu?.systemSeconds } == [0.5, 0, nil])
        #expect(report.workersCPU.userSeconds == 2.75 && report.workersCPU.systemSeconds == 0.5)
        #expect(report.engine == .processes)
        let parent = report.parentCPU.totalSeconds
        #expect(report.parentShare == parent / (parent + 3.25))
        #expect(report.description.contains("(user 2.75 s, system 0.5 s, remote ones not counted)"))
        // A multi-node pool: every slot is a remote one, nothing is counted, no share.
        var nodes = PoolStatistics(workers: 0)
        nodes.addSlot(host: "node1")
        nodes.addSlot(host: "node2")
        let remote = nodes.report(liveCPU: [(0, .init(user: 1, system: 1))])
        #expect(remote.workersCPU.totalSeconds == 0 && remote.parentShare == 0)
        #expect(remote.workers.allSatisfy { $0.cpu == nil })
        #expect(remote.description.contains("; workers on other nodes: not counted"))
    }
}
