import Synchronization

#if os(Linux)
// The multi-node side: worker hosts, remote workers and lost nodes (see Launchers/README.md).
extension Supervisor {
    // MARK: - Nodes (a multi-node pool)

    /// Listens on an ephemeral port and starts the `srun` step of worker hosts; the pool
    /// is running once every host has joined and every worker it started is ready.
    func startCluster(nodes: Int, cpusPerTask: Int?) throws {
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
        settings.logger.info(
            "starting worker hosts on \(nodes) nodes",
            metadata: ["command": "\(step.command.joined(separator: " "))", "port": "\(cluster.port)"])
        do {
            cluster.stepToken = try loop.register(
                step.processHandle, .readable, EventHandler { [weak self] _, _, _ in self?.stepExited() })
        } catch {
            // Nothing could watch srun: end it here, so closing does not wait for it.
            Platform.kill(step.pid, 9)
            _ = try? Platform.reap(step.processHandle, wait: true)
            Platform.close(step.processHandle)
            cluster.stepEnded = true
            throw error
        }
        let timeout = settings.handshakeTimeoutNanos
        loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, state == .starting, let cluster = self.cluster, cluster.hosts.count < cluster.expectedHosts
            else { return }  // every host joined: each worker's own start timer goes on
            let joined = cluster.hosts.map(\.hello.node).joined(separator: ", ")
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "only \(cluster.hosts.count) of \(cluster.expectedHosts) worker hosts joined the pool within \(Self.formatSeconds(timeout))\(joined.isEmpty ? "" : " (\(joined))"); srun said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check that the nodes can reach this one over TCP, or raise ProcessPool.Options.startTimeoutSeconds"
                ))
        }
    }

    /// Accepts waiting connections; each is authenticated on a thread of its own (blocking
    /// reads with a deadline), and only then handed to the loop.
    func acceptConnections() {
        guard let cluster else { return }
        while true {
            let accepted: (descriptor: Int32, peer: String)?
            do {
                accepted = try Platform.acceptTCP(cluster.listener)
            } catch {
                // Out of descriptors, most likely: stop listening for a moment instead of
                // spinning on a connection that cannot be accepted.
                settings.logger.warning(
                    "accepting a connection failed: \(describe(error)); raise the open-files limit (ulimit -n) for pools of many workers"
                )
                loop.unregister(cluster.listenerToken, fd: cluster.listener)
                loop.schedule(afterNanoseconds: 100_000_000) { [weak self] in
                    guard let self, state == .starting || state == .running else { return }
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
                settings.logger.warning("refused a connection from \(peer): too many handshakes at once")
                Platform.close(fd)
                continue
            }
            let secret = cluster.secret
            let logger = settings.logger
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
                            "refused a connection from \(peer): \(describe(error)); nothing runs for it")
                    }
                }
            } catch {
                handshakes.subtract(1, ordering: .relaxed)
                Platform.close(fd)
            }
        }
    }

    /// An authenticated connection: a worker host joining, or a remote worker's channel.
    func connectionAuthenticated(
        _ fd: Int32, _ client: Authentication.Client, _ hello: ClusterMessage.HostHello?, peer: String
    ) {
        guard let cluster, state == .starting || state == .running else {
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
                settings.logger.warning("refused a connection from \(peer): \(error.message)")
                if state == .starting { failStart(error) }
                return
            }
            guard cluster.hosts.count < cluster.expectedHosts else {
                Platform.close(fd)
                settings.logger.warning(
                    "refused a connection from \(peer): all \(cluster.expectedHosts) worker hosts have joined")
                return
            }
            hostJoined(RemoteHost(hello: hello, descriptor: fd), cluster)
            return
        }
        guard let pending = cluster.pending.removeValue(forKey: client.workerID), !pending.host.lost else {
            Platform.close(fd)
            settings.logger.warning("refused a connection from \(peer): no worker \(client.workerID) was started")
            return
        }
        loop.cancelTimer(pending.timer)
        let worker = WorkerConnection(
            slot: pending.slot, channel: fd, host: pending.host, workerID: client.workerID,
            maximumPayload: maximumPayload)
        slots[pending.slot] = worker
        timeline?.workerStarted(worker)
        do {
            try registerChannel(worker)
        } catch {
            brokenChannel(worker, .from(error))
            return
        }
        settings.logger.debug("worker connected", metadata: Self.metadata(worker))
        startHandshakeTimer(worker)
    }

    func hostJoined(_ host: RemoteHost, _ cluster: ClusterState) {
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
        settings.logger.info(
            "worker host joined",
            metadata: [
                "node": "\(host.hello.node)", "workers": "\(host.hello.workers)", "pid": "\(host.hello.pid)",
                "cpus": "\(host.hello.reason)",
            ])
        for _ in 0..<host.hello.workers {
            let slot = slots.count
            slots.append(nil)
            slotHosts.append(host)
            startFailures.append(0)
            statistics.addSlot(host: host.hello.node)
            host.slots.append(slot)
            requestRemoteWorker(slot: slot, on: host)
        }
    }

    /// Asks `host` to start a worker for `slot`; it connects back with the worker's id.
    func requestRemoteWorker(slot: Int, on host: RemoteHost) {
        guard let cluster, !host.lost else { return }
        let workerID = cluster.nextWorkerID
        cluster.nextWorkerID += 1
        let order = ClusterMessage.StartWorker(
            workerID: workerID, slot: slot, maximumPayload: maximumPayload,
            timesItems: settings.itemTimeoutNanos != nil, itemTimeoutNanos: settings.itemTimeoutNanos ?? 0)
        let timeout = settings.handshakeTimeoutNanos
        let timer = loop.schedule(afterNanoseconds: timeout) { [weak self] in
            guard let self, cluster.pending.removeValue(forKey: workerID) != nil else { return }
            remoteStartFailed(
                slot: slot,
                MultiprocessingError(
                    .handshakeFailed,
                    "the worker host on node \(host.hello.node) did not connect worker \(slot) within \(Self.formatSeconds(timeout))"
                ))
        }
        cluster.pending[workerID] = .init(slot: slot, host: host, timer: timer)
        guard let frame = try? order.frame() else { return }
        host.connection.send(frame)
    }

    /// A remote worker could not be started: fail the pool's start, or try again.
    func remoteStartFailed(slot: Int, _ error: MultiprocessingError) {
        startFailures[slot] += 1
        lastStartError = error
        if state == .starting {
            failStart(error)
        } else if state == .running && !retiredSlots.contains(slot) {
            respawn(slot: slot, replacing: "worker \(slot)")
        }
    }

    /// Frames from a worker host: reports of its workers' exits.
    func hostEvent(_ host: RemoteHost) {
        guard !host.lost else { return }
        do {
            let open = try host.connection.readAvailable(into: &readBuffer)
            while !host.lost, let frame = try host.connection.assembler.next() {
                if frame.kind == .hostSignal {
                    let signal = try ClusterMessage.decode(frame) { try $0.readByte("a signal number") }
                    Interruption.shared.forwarded(Int32(signal), from: "the worker host on node \(host.hello.node)")
                    continue
                }
                guard frame.kind == .workerExited else {
                    throw MultiprocessingError(
                        .malformedFrame, "the worker host on node \(host.hello.node) sent a \(frame.kind) frame")
                }
                let report = try ClusterMessage.decode(frame) { try ClusterMessage.WorkerExited(&$0) }
                remoteWorkerExited(report, host)
            }
            if !open { hostLost(host, nil) }
        } catch {
            hostLost(host, .from(error))
        }
    }

    func remoteWorkerExited(_ report: ClusterMessage.WorkerExited, _ host: RemoteHost) {
        if let pending = cluster?.pending.removeValue(forKey: report.workerID) {
            loop.cancelTimer(pending.timer)
            let message =
                report.message.isEmpty
                ? "worker \(pending.slot) on node \(host.hello.node) \(report.termination) before connecting to this program"
                : report.message
            remoteStartFailed(slot: pending.slot, MultiprocessingError(.spawnFailed, message))
            return
        }
        let candidates = allWorkers
        guard let worker = candidates.first(where: { $0.remoteHost === host && $0.workerID == report.workerID })
        else { return }
        worker.exitReport = report
        worker.phase = .exiting
        if worker.pid == 0 { worker.pid = report.pid }
        if report.timedOut, let limit = settings.itemTimeoutNanos { worker.stopReason = .timedOut(limit) }
        guard worker.hasChannel else {
            workerEnded(worker, report.termination)
            return
        }
        // Its channel ends too (the process is gone), and what it sent before comes first.
        // Unless a process the function started holds the socket open: then it is closed
        // here after a grace period.
        loop.schedule(afterNanoseconds: Self.exitGraceNanos) { [weak self, weak worker] in
            guard let self, let worker, !worker.ended else { return }
            closeChannel(of: worker)
        }
    }

    /// A worker host's connection ended: its node is lost with every worker on it. Their
    /// work is retried elsewhere or fails (``settleLostWork(_:_:)``), and their slots stay empty.
    func hostLost(_ host: RemoteHost, _ error: MultiprocessingError?) {
        guard !host.lost else { return }
        host.lost = true
        host.connection.close(loop: loop)
        let node = host.hello.node
        if state == .starting || state == .running {
            settings.logger.warning(
                "lost the worker host on node \(node)\(error.map { ": \($0.message)" } ?? ""); its \(host.slots.count) workers are gone"
            )
        }
        if let cluster {
            for (id, pending) in cluster.pending where pending.host === host {
                loop.cancelTimer(pending.timer)
                cluster.pending[id] = nil
            }
        }
        retiredSlots.formUnion(host.slots)
        statistics.lost.formUnion(host.slots)
        if state == .starting {
            let said = cluster?.step?.lastErrorLines ?? ""
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "the worker host on node \(node) left while the pool was starting\(error.map { " (\($0.message))" } ?? ""); srun said: \(said.isEmpty ? "nothing" : said)"
                ))
        }
        for worker in allWorkers where worker.remoteHost === host {
            worker.closeChannel(loop: loop)
            // A worker whose exit its host reported before the node went keeps that report.
            workerEnded(worker, worker.exitReport?.termination ?? .lost(node: node))
        }
        if state == .running && workerCount == 0 {
            let error = MultiprocessingError(
                .nodesUnavailable,
                "every node of the pool was lost (last: \(node)); no worker is left, and the pool takes no more work. Check the job's output for why the nodes failed"
            )
            unusable = error
            failAllCalls(error)
        } else {
            finishClosingIfDone()
        }
    }

    /// `srun` exited: every host of the step is gone (or about to be).
    func stepExited() {
        guard let cluster, let step = cluster.step, !cluster.stepEnded else { return }
        guard let termination = Self.reapIfExited(step.processHandle) else { return }
        cluster.stepEnded = true
        loop.unregister(cluster.stepToken, fd: step.processHandle)
        Platform.close(step.processHandle)
        if state == .starting {
            step.waitForErrorOutput(milliseconds: 500)
            failStart(
                MultiprocessingError(
                    .nodesUnavailable,
                    "the Slurm step that starts the worker hosts on the other nodes ended (srun \(termination)) before the pool was ready. Slurm said: \(step.lastErrorLines.isEmpty ? "nothing" : step.lastErrorLines). Check what the job asked for (--nodes, --cpus-per-task, --mem-per-cpu), or set MP_NODES=1 to stay on this node. Command: \(step.command.joined(separator: " "))"
                ))
        } else if state == .running {
            for host in cluster.hosts { hostLost(host, MultiprocessingError(.nodesUnavailable, "srun \(termination)")) }
        }
        finishClosingIfDone()
    }

    /// Closing: the hosts' connections close, so each host kills its workers and exits,
    /// which ends the `srun` step; the pool is closed once srun has exited.
    func closeCluster(_ cluster: ClusterState) {
        loop.unregister(cluster.listenerToken, fd: cluster.listener)
        Platform.close(cluster.listener)
        for (_, pending) in cluster.pending { loop.cancelTimer(pending.timer) }
        cluster.pending.removeAll()
        for host in cluster.hosts where !host.lost { hostLost(host, nil) }
        if cluster.step == nil { cluster.stepEnded = true }
    }
}
#endif
