#if os(Linux)
/// The worker host: one per node of a multi-node pool, started by the coordinator as one
/// `srun` task per node, in the same executable (`bootstrap()` enters it). It reads the
/// pool's secret from its standard input, connects back to the coordinator, sizes its
/// workers from its own CPU mask, and starts each worker the coordinator asks for with a
/// fresh authenticated TCP connection as the worker's channel: a remote worker speaks the
/// very protocol of a local one. The host watches its workers (pidfds), reports each
/// exit with where the worker was in its chunk, and enforces item timeouts. When the
/// coordinator's connection ends, the host kills its workers and exits.
struct WorkerHost {
    /// `v1:<port>:<address>,<address>,...` — where the coordinator listens.
    static let environmentVariable = "SWIFT_MULTIPROCESSING_HOST"
    /// Exit status of a host that could not reach or authenticate with the coordinator.
    static let connectFailedStatus: Int32 = 75

    struct Settings: Equatable {
        var port: UInt16
        var addresses: [String]

        var environmentValue: String { "v1:\(port):\(addresses.joined(separator: ","))" }

        init(port: UInt16, addresses: [String]) {
            self.port = port
            self.addresses = addresses
        }

        init?(environmentValue: String) {
            let parts = environmentValue.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "v1", let port = UInt16(parts[1]), port > 0 else { return nil }
            let addresses = parts[2].split(separator: ",").map(String.init)
            guard !addresses.isEmpty else { return nil }
            self.init(port: port, addresses: addresses)
        }
    }

    /// A worker this host started.
    private final class Child {
        let workerID: UInt64
        let spawned: LocalLauncher.SpawnedWorker
        let timeoutNanos: UInt64
        var timedOut = false
        init(workerID: UInt64, spawned: LocalLauncher.SpawnedWorker, timeoutNanos: UInt64) {
            self.workerID = workerID
            self.spawned = spawned
            self.timeoutNanos = timeoutNanos
        }
    }

    let settings: Settings
    let node: String

    init(settings: Settings) {
        self.settings = settings
        node = Platform.environment("SLURMD_NODENAME") ?? Platform.shortHostName()
    }

    func run() -> Never {
        // The coordinator decides when work stops. SIGTERM and SIGUSR1 are passed on to it
        // (Slurm's `--signal=...` reaches only the step's tasks, not the batch script); SIGINT
        // (ctrl-C at srun) is ignored: the coordinator has its own.
        Platform.ignoreBrokenPipe()
        guard let signals = try? Platform.socketPair(), (try? Platform.setNonBlocking(signals.0)) != nil,
            (try? Platform.setNonBlocking(signals.1)) != nil, Platform.forwardTerminationSignals(to: signals.1)
        else { fail("cannot watch for SIGTERM", status: Self.connectFailedStatus) }
        if let program = CommandLine.arguments.first?.split(separator: "/").last {
            Platform.setProcessName(String(String(program).prefix(10)) + "-host")
        }
        let secret = readSecret()
        var control: BlockingChannel
        let address: String
        do {
            (control, address) = try connect(secret: secret, role: .host, workerID: 0)
            let decision = WorkerCount.resolve(
                explicit: nil, environment: WorkerCount.relevantEnvironment(), cpus: WorkerCount.SystemCPUs.current())
            decision.reportWarningsOnce()
            let hello = ClusterMessage.HostHello(
                buildID: Platform.executableBuildID(), pid: Platform.processID, host: Platform.shortHostName(),
                node: node, workers: decision.count, reason: decision.reason)
            try control.send(hello.frame())
        } catch {
            fail("could not join the pool's coordinator: \(describe(error))", status: Self.connectFailedStatus)
        }
        serve(&control, secret: secret, signals: signals.0, address: address)
    }

    private func fail(_ message: String, status: Int32) -> Never {
        Platform.writeToStandardError("swift-multiprocessing worker host on \(node): \(message)\n")
        Platform.exitFlushing(status)
    }

    /// The secret: one line of 64 hex digits on standard input (srun forwards it from the
    /// coordinator), read within 30 seconds.
    private func readSecret() -> ClusterSecret {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        let deadline = Platform.monotonicNanos() + 30_000_000_000
        while line.count < 200 {
            let left = Int64(deadline) - Int64(Platform.monotonicNanos())
            guard left > 0, (try? Platform.pollReadable([0], timeoutMilliseconds: Int32(left / 1_000_000)))?[0] == true
            else { break }
            guard let n = try? Platform.read(0, into: &byte, count: 1), n > 0, byte != UInt8(ascii: "\n") else { break }
            line.append(byte)
        }
        guard let secret = ClusterSecret(hex: String(decoding: line, as: UTF8.self)) else {
            fail(
                "standard input did not carry the pool's secret: this mode is started by a multi-node pool's coordinator through srun, not by hand",
                status: Self.connectFailedStatus)
        }
        return secret
    }

    /// Connects to the coordinator and authenticates: first at `preferred` (the address
    /// that worked before), then at each of its other addresses.
    private func connect(
        secret: ClusterSecret, role: ClusterMessage.Role, workerID: UInt64, preferred: String? = nil
    ) throws -> (channel: BlockingChannel, address: String) {
        var failures: [String] = []
        var refused = false
        let addresses = (preferred.map { [$0] } ?? []) + settings.addresses.filter { $0 != preferred }
        for address in addresses {
            let fd: Int32
            do {
                fd = try Platform.connectTCP(host: address, port: settings.port, timeoutMilliseconds: 5000)
            } catch {
                failures.append("\(address):\(settings.port): \(describe(error))")
                continue
            }
            do {
                var channel = BlockingChannel(descriptor: fd, maximumPayload: Authentication.maximumPayload)
                try channel.limitTime(seconds: Authentication.timeoutSeconds)
                try Authentication.authenticate(&channel, secret: secret, role: role, workerID: workerID)
                try channel.limitTime(seconds: nil)
                return (channel, address)
            } catch {
                // Something else answers at this address (a bridge address that means this
                // node itself, say): it cannot prove the secret. Try the next one.
                Platform.close(fd)
                refused = true
                failures.append("\(address):\(settings.port): \(describe(error))")
            }
        }
        throw MultiprocessingError(
            refused ? .authenticationFailed : .nodesUnavailable,
            "no address of the coordinator answered as the pool's coordinator (\(failures.joined(separator: "; ")))\(refused ? "" : ": is a firewall between the nodes?")"
        )
    }

    private func serve(_ control: inout BlockingChannel, secret: ClusterSecret, signals: Int32, address: String)
        -> Never
    {
        var children: [Child] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 14)
        while true {
            let watched = [control.descriptor, signals] + children.map(\.spawned.processHandle)
            let timing = children.contains { $0.timeoutNanos > 0 }
            guard let ready = try? Platform.pollReadable(watched, timeoutMilliseconds: timing ? 20 : -1) else { break }
            // Workers that exited: report them (their channel to the coordinator closed with
            // them). The ready ones are picked from this poll's entries before any is removed.
            let exited = zip(children, ready.dropFirst(2)).filter { $0.1 }.map(\.0)
            var controlBroken = false
            for child in exited {
                guard let termination = try? Platform.reap(child.spawned.processHandle, wait: false) else { continue }
                let last = child.spawned.progress.snapshot()
                let report = ClusterMessage.WorkerExited(
                    workerID: child.workerID, pid: child.spawned.pid, termination: termination,
                    timedOut: child.timedOut, chunkID: last.chunkID, phase: UInt8(last.phase.rawValue),
                    offset: last.offset)
                Platform.close(child.spawned.processHandle)
                children.removeAll { $0 === child }
                if (try? control.send(report.frame())) == nil { controlBroken = true }
            }
            if controlBroken { break }  // the coordinator is gone
            if timing { enforceTimeouts(children) }
            if ready[1] {
                var signal: UInt8 = 0
                while (try? Platform.readNonBlocking(signals, into: &signal, count: 1)) == 1 {
                    // SIGUSR1: Slurm's warning before the time limit (`--signal=USR1@...`).
                    guard Int32(signal) == Platform.Signal.terminate || Int32(signal) == Platform.Signal.user1
                    else { continue }
                    if let frame = try? Frame.encode(.hostSignal, payload: { $0.write(signal) }) {
                        try? control.send(frame)
                    }
                }
            }
            guard ready[0] else { continue }
            let n = buffer.withUnsafeMutableBytes { raw in
                (try? Platform.read(control.descriptor, into: raw.baseAddress!, count: raw.count)) ?? 0
            }
            if n <= 0 { break }  // the coordinator closed the pool, or died
            buffer.withUnsafeBytes { control.assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do {
                while let frame = try control.assembler.next() {
                    switch frame.kind {
                    case .startWorker:
                        let order = try ClusterMessage.decode(frame) { try ClusterMessage.StartWorker(&$0) }
                        do {
                            children.append(try start(order, secret: secret, address: address))
                        } catch {
                            try control.send(
                                ClusterMessage.WorkerExited(
                                    workerID: order.workerID, pid: 0, termination: .exited(-1),
                                    message: "the worker host on \(node) could not start it: \(describe(error))"
                                ).frame())
                        }
                    case .stopWorker:
                        let id = try ClusterMessage.decode(frame) { try $0.readVarint() }
                        for child in children where child.workerID == id {
                            Platform.kill(child.spawned.pid, Platform.Signal.kill)
                        }
                    default:
                        throw MultiprocessingError(
                            .malformedFrame,
                            "the coordinator sent a \(frame.kind) frame, which a worker host never takes")
                    }
                }
            } catch {
                Platform.writeToStandardError(
                    "swift-multiprocessing worker host on \(node): \(describe(error)); stopping\n")
                break
            }
        }
        // The pool is over: no worker outlives its host.
        for child in children { Platform.kill(child.spawned.pid, Platform.Signal.kill) }
        for child in children { _ = try? Platform.reap(child.spawned.processHandle, wait: true) }
        Platform.exitFlushing(0)
    }

    /// Connects a channel for the worker, authenticates it, and starts the worker with it.
    private func start(_ order: ClusterMessage.StartWorker, secret: ClusterSecret, address: String) throws -> Child {
        let (channel, _) = try connect(
            secret: secret, role: .worker, workerID: order.workerID, preferred: address)
        defer { Platform.close(channel.descriptor) }
        let launcher = LocalLauncher(maximumPayload: order.maximumPayload, timesItems: order.timesItems)
        let spawned = try launcher.spawn(slot: order.slot, connected: channel.descriptor)
        return Child(workerID: order.workerID, spawned: spawned, timeoutNanos: order.itemTimeoutNanos)
    }

    /// Kills a worker whose current item has run past its timeout (the coordinator is
    /// told when its exit is reported).
    private func enforceTimeouts(_ children: [Child]) {
        let now = Platform.monotonicNanos()
        for child in children where child.timeoutNanos > 0 && !child.timedOut {
            let snapshot = child.spawned.progress.snapshot()
            if snapshot.phase != .idle, snapshot.startedNanos > 0, now > snapshot.startedNanos,
                now - snapshot.startedNanos > child.timeoutNanos
            {
                child.timedOut = true
                Platform.kill(child.spawned.pid, Platform.Signal.kill)
            }
        }
    }
}
#endif
