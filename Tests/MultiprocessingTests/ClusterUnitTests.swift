import Foundation
import Synchronization
import Testing

@testable import Multiprocessing

@Suite("Multi-node placement rules")
struct PlacementTests {
    let job: [String: String] = [
        "SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_CPUS_PER_NODE": "2(x2)",
    ]

    @Test("a batch script of a multi-node job spans every node, with the fewest CPUs any node has")
    func batchScriptSpansNodes() {
        let (placement, advice) = Placement.decide(explicitWorkers: nil, environment: job)
        #expect(placement == .nodes(count: 2, cpusPerTask: 2))
        #expect(advice == nil)
        var uneven = job
        uneven["SLURM_JOB_NUM_NODES"] = "4"
        uneven["SLURM_JOB_CPUS_PER_NODE"] = "8,4(x3)"
        #expect(Placement.decide(explicitWorkers: nil, environment: uneven).0 == .nodes(count: 4, cpusPerTask: 4))
    }

    @Test("one node, no job, a count in code, or MP_NODES=1: the pool stays on this node")
    func staysLocal() {
        #expect(Placement.decide(explicitWorkers: nil, environment: [:]).0 == .local)
        var one = job
        one["SLURM_JOB_NUM_NODES"] = "1"
        #expect(Placement.decide(explicitWorkers: nil, environment: one).0 == .local)
        #expect(Placement.decide(explicitWorkers: 3, environment: job).0 == .local)
        var forced = job
        forced["MP_NODES"] = "1"
        let (placement, notice) = Placement.decide(explicitWorkers: nil, environment: forced)
        #expect(placement == .local)
        #expect(notice?.message == "MP_NODES=1: the pool uses this node only; the job's other 1 node stays idle")
        #expect(Placement.decide(explicitWorkers: nil, environment: ["MP_NODES": "1"]) == (.local, nil))
        var wrong = job
        wrong["MP_NODES"] = "off"
        let (spans, warning) = Placement.decide(explicitWorkers: nil, environment: wrong)
        #expect(spans == .nodes(count: 2, cpusPerTask: 2), "a wrong value does not change the placement")
        #expect(
            warning?.message
                == "MP_NODES='off' is ignored: its only value is 1 (keep the pool on this node); unset it to use every node of the job"
        )
        var broken = job
        broken["SLURM_JOB_NUM_NODES"] = "two"
        #expect(Placement.decide(explicitWorkers: nil, environment: broken).0 == .local)
    }

    @Test("inside a step of several tasks: local, and only the first task is told how to fix the job script")
    func insideStep() {
        var step = job
        step["SLURM_STEP_ID"] = "0"
        step["SLURM_STEP_NUM_TASKS"] = "2"
        step["SLURM_STEP_NUM_NODES"] = "2"
        step["SLURM_PROCID"] = "0"
        let (placement, advice) = Placement.decide(explicitWorkers: nil, environment: step)
        #expect(placement == .local)
        #expect(
            advice?.message.hasPrefix(
                "this program runs inside a Slurm job step of 2 tasks on 2 nodes (srun in front of it), so each task uses only its own node's CPUs. To use all 2 nodes in one pool, run the program once, directly in the batch script, without srun"
            ) == true, "\(advice?.message ?? "no advice")")
        step["SLURM_PROCID"] = "1"
        #expect(Placement.decide(explicitWorkers: nil, environment: step).1 == nil)
        // A one-task step on one node of a multi-node job: local, nothing to say.
        var single = job
        single["SLURM_STEP_ID"] = "3"
        single["SLURM_STEP_NUM_TASKS"] = "1"
        single["SLURM_STEP_NUM_NODES"] = "1"
        #expect(Placement.decide(explicitWorkers: nil, environment: single) == (.local, nil))
    }

    @Test(
        "SLURM_JOB_CPUS_PER_NODE forms", arguments: [("2", 2), ("2(x2)", 2), ("8,4(x3),6", 4), ("", nil), ("x", nil)])
    func cpusPerNode(value: String, expected: Int?) {
        #expect(Placement.minimumCPUsPerNode(value) == expected)
    }
}

@Suite("Multi-node authentication and messages")
struct AuthenticationTests {
    /// A socket pair whose reads and writes give up after 5 s: a broken handshake fails
    /// the test instead of hanging it.
    func timedSocketPair() throws -> (Int32, Int32) {
        let (a, b) = try Platform.socketPair()
        try Platform.setIOTimeout(a, milliseconds: 5000)
        try Platform.setIOTimeout(b, milliseconds: 5000)
        return (a, b)
    }

    /// Runs the coordinator's side of the handshake on a thread of its own (it blocks),
    /// and the client's side here.
    func handshake(
        coordinatorSecret: ClusterSecret, clientSecret: ClusterSecret?, garbage: [UInt8]? = nil
    ) throws -> (coordinator: Result<Authentication.Client, MultiprocessingError>, client: MultiprocessingError?) {
        let (a, b) = try timedSocketPair()
        defer {
            Platform.close(a)
            Platform.close(b)
        }
        let result = Mutex<Result<Authentication.Client, MultiprocessingError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var channel = BlockingChannel(descriptor: a, maximumPayload: Authentication.maximumPayload)
            let outcome: Result<Authentication.Client, MultiprocessingError>
            do {
                outcome = .success(try Authentication.acceptClient(&channel, secret: coordinatorSecret))
            } catch {
                outcome = .failure(MultiprocessingError.from(error))
            }
            result.withLock { $0 = outcome }
            shutdown(a, Int32(SHUT_RDWR))  // as the coordinator closes a refused connection
            done.signal()
        }
        var clientError: MultiprocessingError?
        if let garbage {
            garbage.withUnsafeBytes { _ = try? Platform.writeAll(b, $0) }
        } else if let clientSecret {
            var channel = BlockingChannel(descriptor: b, maximumPayload: Authentication.maximumPayload)
            do {
                try Authentication.authenticate(&channel, secret: clientSecret, role: .worker, workerID: 42)
            } catch {
                clientError = MultiprocessingError.from(error)
            }
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "the coordinator's side did not finish")
        return (result.withLock { $0! }, clientError)
    }

    @Test("the same secret: both sides succeed, and the coordinator learns the role and worker id")
    func sameSecret() throws {
        let secret = ClusterSecret.random()
        let (coordinator, client) = try handshake(coordinatorSecret: secret, clientSecret: secret)
        #expect(client == nil)
        let accepted = try coordinator.get()
        #expect(accepted.role == .worker && accepted.workerID == 42)
    }

    @Test("a client with a wrong secret is refused, and learns nothing it could use")
    func wrongSecret() throws {
        let (coordinator, client) = try handshake(
            coordinatorSecret: .random(), clientSecret: .random())
        guard case .failure(let error) = coordinator else {
            Issue.record("a wrong secret was accepted")
            return
        }
        #expect(error.code == .authenticationFailed)
        #expect(
            error.message
                == "the client's proof of the pool's secret is wrong (a different pool's worker host, or not a worker host at all)"
        )
        #expect(client?.code == .authenticationFailed)
        #expect(client?.message == "the peer closed the connection instead of sending the coordinator's proof")
    }

    @Test("garbage instead of the protocol is refused as such, without a large allocation")
    func garbage() throws {
        let (coordinator, _) = try handshake(
            coordinatorSecret: .random(), clientSecret: nil, garbage: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        guard case .failure(let error) = coordinator else {
            Issue.record("garbage was accepted")
            return
        }
        #expect(error.code == .malformedFrame)
        #expect(error.message.hasPrefix("the peer sent bytes that are not a swift-multiprocessing frame"))
        // A frame header announcing a huge payload is refused before anything is allocated.
        let huge: [UInt8] = [
            0x4D, 0x50, Frame.protocolVersion, Frame.Kind.authenticate.rawValue, 0xFF, 0xFF, 0xFF, 0x7F,
        ]
        let (second, _) = try handshake(coordinatorSecret: .random(), clientSecret: nil, garbage: huge)
        guard case .failure(let tooLarge) = second else {
            Issue.record("a huge frame was accepted")
            return
        }
        #expect(tooLarge.code == .frameTooLarge)
    }

    @Test("a coordinator that does not know the secret cannot give a worker host work")
    func impostorCoordinator() throws {
        let (a, b) = try timedSocketPair()
        defer {
            Platform.close(a)
            Platform.close(b)
        }
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // An impostor: it plays the protocol, but can only guess the proof.
            var channel = BlockingChannel(descriptor: a, maximumPayload: Authentication.maximumPayload)
            let nonce = Platform.randomBytes(ClusterMessage.nonceSize)
            try? channel.send(Frame.encode(.challenge) { $0.write(contentsOf: nonce) })
            _ = try? channel.receive()
            let guess = Platform.randomBytes(ClusterMessage.macSize)
            try? channel.send(Frame.encode(.authenticated) { $0.write(contentsOf: guess) })
            done.signal()
        }
        var channel = BlockingChannel(descriptor: b, maximumPayload: Authentication.maximumPayload)
        let error = #expect(throws: MultiprocessingError.self) {
            try Authentication.authenticate(&channel, secret: .random(), role: .host, workerID: 0)
        }
        #expect(error?.code == .authenticationFailed)
        #expect(
            error?.message
                == "the coordinator did not prove it holds this pool's secret: refusing to take work from it")
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    @Test("the secret travels as 64 hex digits; anything else is refused")
    func secretText() {
        let secret = ClusterSecret.random()
        #expect(secret.bytes.count == 32)
        #expect(ClusterSecret(hex: secret.hex) == secret)
        #expect(ClusterSecret(hex: secret.hex.uppercased()) == secret)
        #expect(ClusterSecret(hex: String(secret.hex.dropLast())) == nil)
        #expect(ClusterSecret(hex: String(secret.hex.dropLast()) + "g") == nil)
        #expect(ClusterSecret.random() != ClusterSecret.random())
    }

    @Test("host messages round-trip, and out-of-range values are refused")
    func messages() throws {
        func frame(_ bytes: [UInt8]) throws -> Frame {
            var assembler = FrameAssembler()
            bytes.withUnsafeBytes { assembler.append($0) }
            return try #require(try assembler.next())
        }
        let hello = ClusterMessage.HostHello(
            buildID: [1, 2, 3], pid: 77, host: "n1", node: "node1", workers: 16, reason: "affinity mask")
        #expect(try ClusterMessage.decode(frame(hello.frame())) { try ClusterMessage.HostHello(&$0) } == hello)
        let start = ClusterMessage.StartWorker(
            workerID: 9, slot: 3, maximumPayload: 1 << 20, timesItems: true, itemTimeoutNanos: 5_000_000)
        #expect(try ClusterMessage.decode(frame(start.frame())) { try ClusterMessage.StartWorker(&$0) } == start)
        for termination in [ProcessTermination.exited(3), .signaled(9)] {
            let exited = ClusterMessage.WorkerExited(
                workerID: 4, pid: 1234, termination: termination, timedOut: true, chunkID: 8, phase: 2, offset: 5,
                message: "why")
            #expect(try ClusterMessage.decode(frame(exited.frame())) { try ClusterMessage.WorkerExited(&$0) } == exited)
        }
        // Bytes after the message are refused, not ignored.
        let padded = try Frame.encode(.startWorker) { w in
            w.write(contentsOf: Array(try start.frame()[Frame.headerSize...]))
            w.write(0xAB)
        }
        let trailing = #expect(throws: MultiprocessingError.self) {
            try ClusterMessage.decode(frame(padded)) { try ClusterMessage.StartWorker(&$0) }
        }
        #expect(trailing?.message == "a startWorker frame carried 1 bytes more than its message")
        let zero = ClusterMessage.HostHello(buildID: [], pid: 1, host: "h", node: "n", workers: 0, reason: "")
        #expect(throws: MultiprocessingError.self) {
            try ClusterMessage.decode(frame(zero.frame())) { try ClusterMessage.HostHello(&$0) }
        }
    }

    @Test("the host-mode variable: written and read back; a foreign value is refused")
    func hostSettings() {
        let settings = WorkerHost.Settings(port: 4242, addresses: ["10.0.0.1", "127.0.0.1"])
        #expect(WorkerHost.Settings(environmentValue: settings.environmentValue) == settings)
        #expect(WorkerHost.Settings(environmentValue: "v1:0:1.2.3.4") == nil)
        #expect(WorkerHost.Settings(environmentValue: "v2:80:1.2.3.4") == nil)
        #expect(WorkerHost.Settings(environmentValue: "v1:80:") == nil)
    }

    @Test("TCP: a listener on an ephemeral port accepts a connection from this node's addresses")
    func loopbackTCP() throws {
        let (listener, port) = try Platform.listenTCP()
        defer { Platform.close(listener) }
        #expect(port > 0)
        let addresses = Platform.localIPv4Addresses()
        #expect(addresses.last?.hasPrefix("127.") == true, "\(addresses)")
        let client = try Platform.connectTCP(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000)
        defer { Platform.close(client) }
        var accepted: (descriptor: Int32, peer: String)?
        for _ in 0..<100 where accepted == nil {
            accepted = try Platform.acceptTCP(listener)
            if accepted == nil { usleep(10_000) }
        }
        let connection = try #require(accepted)
        defer { Platform.close(connection.descriptor) }
        #expect(connection.peer.hasPrefix("127.0.0.1:"))
        #expect(throws: MultiprocessingError.self) {
            try Platform.connectTCP(host: "not-an-address", port: port, timeoutMilliseconds: 100)
        }
    }
}
