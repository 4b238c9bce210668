#if os(Linux)
/// Local workers: each is a child process of this program, with its channel open as soon
/// as it is spawned; the supervisor watches its pidfd for its exit and reaps it.
extension LocalLauncher: WorkerLauncher {
    func start(loop: EventLoop, delegate: any WorkerLauncherDelegate) throws {}

    func startWorker(slot: Int) throws -> LaunchedWorker? {
        let spawned = try spawn(slot: slot)
        return LaunchedWorker(
            slot: slot, channel: spawned.channel, pid: spawned.pid, node: Platform.hostName, id: 0,
            processHandle: spawned.processHandle, output: spawned.output, progress: spawned.progress)
    }

    func stopWorker(pid: Int32, id: UInt64) { Platform.kill(pid, Platform.Signal.kill) }

    var startIsComplete: Bool { true }

    func describe(workers: Int) -> String { "\(workers) local workers" }

    func close() {}

    func endAfterGrace(loop: EventLoop) -> UInt64? { nil }

    var hasEnded: Bool { true }
}
#endif
