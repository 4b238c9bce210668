import Logging
import Synchronization

#if os(Linux)
/// Workers on every node of a Slurm allocation (see `README.md` in this folder): a worker
/// host per node, started by one `srun` step, connects back over TCP and starts workers on
/// request; each worker connects back on a channel of its own. The host reports each
/// worker's exit (with its progress page), and its connection ending means its node is
/// lost. Touched only by the event loop's owner, except the handshakes, which run on
/// threads of their own and hand authenticated sockets to the loop.
final class SlurmLauncher: WorkerLauncher, @unchecked Sendable {
    /// Handshakes (each on a thread of its own, for at most 10 s) running at once.
    static let maximumHandshakes = 256

    let nodes: Int
    let cpusPerTask: Int?
    let maximumPayload: Int
    /// How long hosts have to join, and each worker to connect.
    let handshakeTimeoutNanos: UInt64
    let itemTimeoutNanos: UInt64?
    let logger: Logger
    private let buildID = Platform.executableBuildID()
    private var loop: EventLoop!
    private weak var delegate: (any WorkerLauncherDelegate)?
    private var cluster: ClusterState?
    /// For each slot, the worker host (node) whose workers fill it.
    private var slotHosts: [Int: RemoteHost] = [:]
    /// For each worker that connected (by its id), its host.
    private var workerHosts: [UInt64: RemoteHost] = [:]
    /// Handshakes running on threads of their own (bounded, against connection floods).
    private let handshakes = Atomic<Int>(0)
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)

    init(
        nodes: Int, cpusPerTask: Int?, maximumPayload: Int, handshakeTimeoutNanos: UInt64, itemTimeoutNanos: UInt64?,
        logger: Logger
    ) {
        self.nodes = nodes
        self.cpusPerTask = cpusPerTask
        self.maximumPayload = maximumPayload
        self.handshakeTimeoutNanos = handshakeTimeoutNanos
        self.itemTimeoutNanos = itemTimeoutNanos
        self.logger = logger
    }

    private static func describe(_ error: any Error) -> String {
        (error as? MultiprocessingError)?.message ?? String(describing: error)
    }

    private var mayStartWorkers: Bool { delegate?.launcherMayStartWorkers ?? false }
    private var isStarting: Bool { delegate?.launcherPoolIsStarting ?? false }

    // MARK: - WorkerLauncher

    /// Listens on an ephemeral port and starts the `srun` step of worker hosts; the pool
    /// is running once every host has joined and every worker it started is ready.
    func start(loop: EventLoop, delegate: any WorkerLauncherDelegate) throws {
        self.loop = loop
        self.delegate = delegate
        // One descriptor per remote worker: a pool of many nodes needs more than the usual
        // soft limit of 1024.
        Platform.raiseOpenFilesLimit()
        let cluster = try ClusterState(expectedHosts: nodes)
        self.cluster = cluster
        cluster.listenerToken = try loop.register(
            cluster.listener, .readable, EventHandler { [weak self] _, _, _ in self?.acceptConnections() })
        let addresses = Platform.localIPv4Addresses()
        let step = try SlurmStep(
            nodes: nodes, cpusPerTask: cpusPerTask, host: .init(port: cluster.port, addresses: addresses),
            secret: cluster.secret)
        cluster.step = step
        logger.info(
            "starting worker hosts on \(nodes) nodes",
            metadata: ["command": "\(step.command.joined(separator: " "))", "port": "\(cluster.port)"])
        do {
            cluster.stepToken = try loop.register(
                step.processHandle, .readable, EventHandler { [weak self] _, _, _ in self?.stepExited() })
        } catch {
            // Nothing could watch srun: end it here, so closing does not wait for it.
            Platform.kill(step.pid, Platform.Signal.kill)
            _ = try? Platform.reap(step.processHandle, wait: true)
            Platform.close(step.processHandle)
            cluster.stepEnded = true
            throw error
        }
        let timeout = handshakeTimeoutNanos
        loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, isStarting, let cluster = self.cluster, cluster.hosts.count < cluster.expectedHosts
            else { return }  // every host joined: each worker's own start timer goes on
            let joined = cluster.hosts.map(\.hello.node).joined(separator: ", ")
            self.delegate?.launcherFailed(
                MultiprocessingError(
                    .nodesUnavailable,
                    "only \(cluster.hosts.count) of \(cluster.expectedHosts) worker hosts joined the pool within \(describeSeconds(timeout))\(joined.isEmpty ? "" : " (\(joined))"); srun said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check that the nodes can reach this one over TCP, or raise ProcessPool.Options.startTimeoutSeconds"
                ))
        }
    }

    /// Asks the host of `slot` to start a worker; it connects back with the worker's id.
    func startWorker(slot: Int) throws -> LaunchedWorker? {
        guard let cluster, let host = slotHosts[slot], !host.lost else { return nil }
        let workerID = cluster.nextWorkerID
        cluster.nextWorkerID += 1
        let order = ClusterMessage.StartWorker(
            workerID: workerID, slot: slot, maximumPayload: maximumPayload, timesItems: itemTimeoutNanos != nil,
            itemTimeoutNanos: itemTimeoutNanos ?? 0)
        let timeout = handshakeTimeoutNanos
        let timer = loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, cluster.pending.removeValue(forKey: workerID) != nil else { return }
            delegate?.launcherFailedToStart(
                slot: slot,
                MultiprocessingError(
                    .handshakeFailed,
                    "the worker host on node \(host.hello.node) did not connect worker \(slot) within \(describeSeconds(timeout))"
                ))
        }
        cluster.pending[workerID] = .init(slot: slot, host: host, timer: timer)
        if let frame = try? order.frame() { host.connection.send(frame) }
        return nil
    }

    /// Kills a worker through its host.
    func stopWorker(pid: Int32, id: UInt64) {
        guard let host = workerHosts[id] else { return }
        if let frame = try? Frame.encode(.stopWorker, payload: { $0.write(varint: id) }) {
            host.connection.send(frame)
        }
    }

    var startIsComplete: Bool {
        guard let cluster else { return true }
        return cluster.hosts.count == cluster.expectedHosts && cluster.pending.isEmpty
    }

    func describe(workers: Int) -> String {
        guard let cluster else { return "\(workers) local workers" }
        let nodes = cluster.hosts.map { "\($0.hello.node): \($0.hello.workers) (\($0.hello.reason))" }
        return "\(cluster.hosts.count) nodes, each counting its own CPUs — " + nodes.joined(separator: "; ")
    }

    /// Closing: the hosts' connections close, so each host kills its workers and exits,
    /// which ends the `srun` step; the pool is closed once srun has exited.
    func close() {
        guard let cluster else { return }
        loop.unregister(cluster.listenerToken, fd: cluster.listener)
        Platform.close(cluster.listener)
        for (_, pending) in cluster.pending { loop.cancelTimer(pending.timer) }
        cluster.pending.removeAll()
        for host in cluster.hosts where !host.lost { hostLost(host, nil) }
        if cluster.step == nil { cluster.stepEnded = true }
    }

    /// The hosts were told to stop (their connections closed) and have not: let Slurm end
    /// the step (srun passes SIGTERM on, then SIGKILL).
    func endAfterGrace(loop: EventLoop) -> UInt64? {
        guard let cluster, let step = cluster.step, !cluster.stepEnded else { return nil }
        Platform.kill(step.pid, Platform.Signal.terminate)
        return loop.schedule(afterNanoseconds: Self.stepKillDelayNanos) {
            Platform.kill(step.pid, Platform.Signal.kill)
        }
    }

    /// How long `srun` has, after SIGTERM, before SIGKILL: five times a worker's grace
    /// period, for Slurm to pass the signal on and the hosts to end their workers.
    static let stepKillDelayNanos: UInt64 = 5 * 2_000_000_000

    var hasEnded: Bool { cluster?.stepEnded ?? true }

    // MARK: - Connections

    /// Accepts waiting connections; each is authenticated on a thread of its own (blocking
    /// reads with a deadline), and only then handed to the loop.
    private func acceptConnections() {
        guard let cluster else { return }
        while true {
            let accepted: (descriptor: Int32, peer: String)?
            do {
                accepted = try Platform.acceptTCP(cluster.listener)
            } catch {
                // Out of descriptors, most likely: stop listening for a moment instead of
                // spinning on a connection that cannot be accepted.
                logger.warning(
                    "accepting a connection failed: \(Self.describe(error)); raise the open-files limit (ulimit -n) for pools of many workers"
                )
                loop.unregister(cluster.listenerToken, fd: cluster.listener)
                loop.schedule(afterNanoseconds: 100_000_000) { [weak self] in
                    guard let self, mayStartWorkers else { return }
                    cluster.listenerToken =
                        (try? loop.register(
                            cluster.listener, .readable,
                            EventHandler { [weak self] _, _, _ in self?.acceptConnections() })) ?? 0
                }
                return
            }
            guard let (fd, peer) = accepted else { return }
            guard handshakes.add(1, ordering: .relaxed).newValue <= Self.maximumHandshakes else {
                handshakes.subtract(1, ordering: .relaxed)
                logger.warning("refused a connection from \(peer): too many handshakes at once")
                Platform.close(fd)
                continue
            }
            let secret = cluster.secret
            let logger = logger
            do {
                try OSThread.start(name: "mp-handshake") { [self] in
                    defer { handshakes.subtract(1, ordering: .relaxed) }
                    do {
                        var channel = BlockingChannel(descriptor: fd, maximumPayload: Authentication.maximumPayload)
                        try channel.limitTime(seconds: Authentication.timeoutSeconds)
                        let client = try Authentication.acceptClient(&channel, secret: secret)
                        var hello: ClusterMessage.HostHello?
                        if client.role == .host {
                            let frame = try channel.receive(expecting: .hostHello, "the worker host's hello")
                            hello = try ClusterMessage.decode(frame) { try ClusterMessage.HostHello(&$0) }
                        }
                        guard channel.assembler.bufferedByteCount == 0 else {
                            throw MultiprocessingError(.malformedFrame, "the client sent more than the handshake")
                        }
                        try channel.limitTime(seconds: nil)
                        try Platform.setNonBlocking(fd)
                        let joining = hello
                        loop.execute { [self] in connectionAuthenticated(fd, client, joining, peer: peer) }
                    } catch {
                        Platform.close(fd)
                        logger.warning(
                            "refused a connection from \(peer): \(Self.describe(error)); nothing runs for it")
                    }
                }
            } catch {
                handshakes.subtract(1, ordering: .relaxed)
                Platform.close(fd)
            }
        }
    }

    /// An authenticated connection: a worker host joining, or a remote worker's channel.
    private func connectionAuthenticated(
        _ fd: Int32, _ client: Authentication.Client, _ hello: ClusterMessage.HostHello?, peer: String
    ) {
        guard let cluster, mayStartWorkers else {
            Platform.close(fd)
            return
        }
        if let hello {
            guard hello.buildID == buildID else {
                Platform.close(fd)
                let error = MultiprocessingError(
                    .protocolMismatch,
                    "the worker host on node \(hello.node) runs a different build of the program: the executable must be the same file at the same path on every node (copy it to node-local disks with sbcast, or keep it on a shared filesystem)"
                )
                logger.warning("refused a connection from \(peer): \(error.message)")
                if isStarting { delegate?.launcherFailed(error) }
                return
            }
            guard cluster.hosts.count < cluster.expectedHosts else {
                Platform.close(fd)
                logger.warning(
                    "refused a connection from \(peer): all \(cluster.expectedHosts) worker hosts have joined")
                return
            }
            hostJoined(RemoteHost(hello: hello, descriptor: fd), cluster)
            return
        }
        guard let pending = cluster.pending.removeValue(forKey: client.workerID), !pending.host.lost else {
            Platform.close(fd)
            logger.warning("refused a connection from \(peer): no worker \(client.workerID) was started")
            return
        }
        loop.cancelTimer(pending.timer)
        workerHosts[client.workerID] = pending.host
        delegate?.launcherConnected(
            LaunchedWorker(
                slot: pending.slot, channel: fd, pid: 0, node: pending.host.hello.node, id: client.workerID,
                processHandle: -1, output: -1, progress: nil))
    }

    private func hostJoined(_ host: RemoteHost, _ cluster: ClusterState) {
        cluster.hosts.append(host)
        do {
            host.connection.token = try loop.register(
                host.connection.descriptor, [.readable, .writable, .edgeTriggered],
                EventHandler { [weak self, unowned host] readable, writable, hangup in
                    if writable { try? host.connection.flush() }
                    if readable || hangup { self?.hostEvent(host) }
                })
        } catch {
            hostLost(host, .from(error))
            return
        }
        logger.info(
            "worker host joined",
            metadata: [
                "node": "\(host.hello.node)", "workers": "\(host.hello.workers)", "pid": "\(host.hello.pid)",
                "cpus": "\(host.hello.reason)",
            ])
        guard let slots = delegate?.launcherAddedSlots(host.hello.workers, node: host.hello.node) else { return }
        for slot in slots {
            slotHosts[slot] = host
            host.slots.append(slot)
            _ = try? startWorker(slot: slot)
        }
    }

    /// Frames from a worker host: reports of its workers' exits, and signals it passes on.
    private func hostEvent(_ host: RemoteHost) {
        guard !host.lost else { return }
        do {
            let open = try host.connection.readAvailable(into: &readBuffer)
            while !host.lost, let frame = try host.connection.assembler.next() {
                if frame.kind == .hostSignal {
                    let signal = try ClusterMessage.decode(frame) { try $0.readByte("a signal number") }
                    delegate?.launcherForwardedSignal(Int32(signal), from: "the worker host on node \(host.hello.node)")
                    continue
                }
                guard frame.kind == .workerExited else {
                    throw MultiprocessingError(
                        .malformedFrame, "the worker host on node \(host.hello.node) sent a \(frame.kind) frame")
                }
                let report = try ClusterMessage.decode(frame) { try ClusterMessage.WorkerExited(&$0) }
                workerExited(report, host)
            }
            if !open { hostLost(host, nil) }
        } catch {
            hostLost(host, .from(error))
        }
    }

    /// A host reported a worker's exit: before it connected (its start failed), or after.
    private func workerExited(_ report: ClusterMessage.WorkerExited, _ host: RemoteHost) {
        if let pending = cluster?.pending.removeValue(forKey: report.workerID) {
            loop.cancelTimer(pending.timer)
            let message =
                report.message.isEmpty
                ? "worker \(pending.slot) on node \(host.hello.node) \(report.termination) before connecting to this program"
                : report.message
            delegate?.launcherFailedToStart(slot: pending.slot, MultiprocessingError(.spawnFailed, message))
            return
        }
        guard workerHosts[report.workerID] === host else { return }
        delegate?.launcherWorkerExited(id: report.workerID, report)
    }

    /// A worker host's connection ended: its node is lost with every worker on it, and
    /// its slots stay empty.
    private func hostLost(_ host: RemoteHost, _ error: MultiprocessingError?) {
        guard !host.lost else { return }
        host.lost = true
        host.connection.close(loop: loop)
        let node = host.hello.node
        if mayStartWorkers {
            logger.warning(
                "lost the worker host on node \(node)\(error.map { ": \($0.message)" } ?? ""); its \(host.slots.count) workers are gone"
            )
        }
        if let cluster {
            for (id, pending) in cluster.pending where pending.host === host {
                loop.cancelTimer(pending.timer)
                cluster.pending[id] = nil
            }
        }
        let said = cluster?.step?.lastErrorLines ?? ""
        let startError = MultiprocessingError(
            .nodesUnavailable,
            "the worker host on node \(node) left while the pool was starting\(error.map { " (\($0.message))" } ?? ""); srun said: \(said.isEmpty ? "nothing" : said)"
        )
        delegate?.launcherLostNode(node, slots: host.slots, startError: startError)
    }

    /// `srun` exited: every host of the step is gone (or about to be).
    private func stepExited() {
        guard let cluster, let step = cluster.step, !cluster.stepEnded else { return }
        let termination: ProcessTermination
        do {
            guard let ended = try Platform.reap(step.processHandle, wait: false) else { return }
            termination = ended
        } catch {
            termination = .exited(-1)
        }
        cluster.stepEnded = true
        loop.unregister(cluster.stepToken, fd: step.processHandle)
        Platform.close(step.processHandle)
        if isStarting {
            step.waitForErrorOutput(milliseconds: 500)
            delegate?.launcherFailed(
                MultiprocessingError(
                    .nodesUnavailable,
                    "the Slurm step that starts the worker hosts on the other nodes ended (srun \(termination)) before the pool was ready. Slurm said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check what the job asked for (--nodes, --cpus-per-task, --mem-per-cpu), or set MP_NODES=1 to stay on this node. Command: \(step.command.joined(separator: " "))"
                ))
        } else if mayStartWorkers {
            for host in cluster.hosts { hostLost(host, MultiprocessingError(.nodesUnavailable, "srun \(termination)")) }
        }
        delegate?.launcherEnded()
    }
}
#endif
