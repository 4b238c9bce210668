import Synchronization

/// What a worker knows about itself, and `bootstrap()`'s switch into worker mode. The
/// launch contract (the variable, the descriptors, the settings) is declared with the
/// launchers, in `Launchers/WorkerEnvironment.swift`.
extension WorkerMode {
    /// 0: bootstrap not called; 1: called, this is a parent; 2: this is a worker.
    static let state = Atomic<Int>(0)

    static var bootstrapped: Bool { state.load(ordering: .acquiring) != 0 }
    static var isWorker: Bool { state.load(ordering: .acquiring) == 2 }

    /// Called by `Multiprocessing.bootstrap()`: returns in a normal program, never returns
    /// in a worker.
    static func bootstrap() {
        #if os(Linux)
        if let value = Platform.environment(WorkerHost.environmentVariable) {
            Platform.removeEnvironment(WorkerHost.environmentVariable)
            guard let settings = WorkerHost.Settings(environmentValue: value) else {
                Platform.writeToStandardError(
                    "swift-multiprocessing: \(WorkerHost.environmentVariable)=\(value) is not a value this library wrote; unset it and run the program again\n"
                )
                Platform.exitImmediately(2)
            }
            state.store(2, ordering: .releasing)
            WorkerHost(settings: settings).run()
        }
        #endif
        guard let value = Platform.environment(environmentVariable) else {
            state.store(1, ordering: .releasing)
            return
        }
        Platform.removeEnvironment(environmentVariable)
        guard let settings = Settings(environmentValue: value) else {
            Platform.writeToStandardError(
                "swift-multiprocessing: \(environmentVariable)=\(value) is not a value this library wrote; unset it and run the program again\n"
            )
            Platform.exitImmediately(2)
        }
        state.store(2, ordering: .releasing)
        WorkerLoop(settings: settings).run()
    }

    /// Called when a process started as a worker reaches pool creation without having
    /// called `bootstrap()`: tell the parent, and stop before anything is spawned.
    static func refuseUnbootstrappedWorker() -> Never {
        let message = Message.Failure(
            code: MultiprocessingError.Code.bootstrapMissing.description,
            message: "the worker process ran your program's main without entering worker mode")
        if let frame = try? message.frame(.fatal) {
            frame.withUnsafeBytes { try? Platform.writeAll(channelDescriptor, $0) }
        }
        Platform.exitImmediately(bootstrapMissingStatus)
    }
}

/// The worker's side of the protocol: handshake, then read frames and answer them
/// until the parent closes the channel. Runs on the worker's main thread; the lifeline
/// runs on a thread of its own.
struct WorkerLoop {
    let settings: WorkerMode.Settings
    let channel = WorkerMode.channelDescriptor

    func run() -> Never {
        Platform.ignoreTerminationSignals()
        #if os(Linux)
        Platform.dieWithParentThread()
        #endif
        if Platform.parentProcessID != settings.parentPID { Platform.exitImmediately(0) }
        startLifeline()
        Platform.lineBufferStandardOutput()
        // Workers are started through /proc/self/exe; name them after the program instead
        // of "exe" in top, ps -o comm and crash reports.
        if let program = CommandLine.arguments.first?.split(separator: "/").last {
            Platform.setProcessName(String(program))
        }

        do {
            let hello = Message.Hello(
                buildID: Platform.executableBuildID(), pid: Platform.processID, host: Platform.shortHostName())
            try send(hello.frame())
            try serve()
        } catch {
            let error = MultiprocessingError.from(error)
            // The parent closed the channel while this worker was answering (the pool
            // closed, or stopped it): nothing to report.
            if Platform.isPeerGone(error) { Platform.exitFlushing(0) }
            let failure = Message.Failure(code: error.code.description, message: error.message)
            if let frame = try? failure.frame(.fatal) { try? send(frame) }
            Platform.writeToStandardError(
                "swift-multiprocessing worker \(settings.slot) (pid \(Platform.processID)): \(error.message)\n")
            Platform.exitFlushing(1)
        }
        Platform.exitFlushing(0)
    }

    private func send(_ frame: [UInt8]) throws {
        try frame.withUnsafeBytes { raw throws in try Platform.writeAll(channel, raw) }
    }

    /// A short chunk's result waits here while the next task is already read, so that a
    /// run of tiny chunks is answered with one write instead of one per chunk. Held results
    /// are written before the worker blocks reading, before it runs a task of a call whose
    /// last chunk here computed for ``holdsResultsOfChunksUnderNanos`` or more (or of a call it has
    /// not run yet), and before they would pass ``maximumHeldBytes``. So a result waits at
    /// most for the next chunk of a call whose chunks have been short.
    private struct HeldReplies {
        var bytes: [UInt8] = []
        /// How long the last chunk of each call took here.
        var lastChunkNanos: [UInt64: UInt64] = [:]
        static let holdsResultsOfChunksUnderNanos: UInt64 = 50_000
        static let maximumHeldBytes = 1 << 16

        func mayHoldWhileRunning(callID: UInt64) -> Bool {
            (lastChunkNanos[callID] ?? .max) < Self.holdsResultsOfChunksUnderNanos
        }

        mutating func write(to channel: Int32) throws {
            guard !bytes.isEmpty else { return }
            defer { bytes.removeAll(keepingCapacity: bytes.capacity <= Self.maximumHeldBytes * 2) }
            try bytes.withUnsafeBytes { raw throws in try Platform.writeAll(channel, raw) }
        }
    }

    /// Answers frames until the parent closes the channel (then returns).
    private func serve() throws {
        var held = HeldReplies()
        do {
            try serve(holding: &held)
            try? held.write(to: channel)
        } catch {
            // Results already computed still reach the parent before the error does.
            try? held.write(to: channel)
            throw error
        }
    }

    private func serve(holding held: inout HeldReplies) throws {
        var assembler = FrameAssembler(maximumPayload: settings.maximumPayload, readsLargeFramesDirectly: true)
        var runners: [UInt64: any ChunkRunner] = [:]
        let executor = WorkerExecutor.shared
        let context = RunnerContext(
            maximumPayload: settings.maximumPayload,
            progress: try? ProgressPage(inheritedDescriptor: WorkerMode.progressDescriptor),
            timesItems: settings.timesItems)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            while var frame = try assembler.next() {
                switch frame.kind {
                case .install:
                    var header = Message.Install(callID: 0, typeName: "")
                    do {
                        let runner = try frame.payload.withUnsafeBytes { raw throws in
                            var reader = ByteReader(raw)
                            header = try Message.Install(&reader)
                            let rest = UnsafeRawBufferPointer(rebasing: raw[reader.offset...])
                            var callContext = context
                            callContext.timesChunks = header.timesChunks
                            return try makeChunkRunner(
                                typeName: header.typeName, functionBytes: rest, context: callContext)
                        }
                        runners[header.callID] = runner
                    } catch {
                        let error = MultiprocessingError.from(error)
                        try held.write(to: channel)
                        try send(
                            Message.Failure(callID: header.callID, code: error.code.description, message: error.message)
                                .frame(.installFailed))
                    }
                case .task:
                    let (task, offset) = try frame.payload.withUnsafeBytes { raw throws in
                        var reader = ByteReader(raw)
                        return (try Message.Task(&reader), reader.offset)
                    }
                    if !held.bytes.isEmpty && !held.mayHoldWhileRunning(callID: task.callID) {
                        try held.write(to: channel)
                    }
                    let reply: ChunkReply
                    if let runner = runners[task.callID] {
                        let payload = frame.payload
                        reply =
                            runner.executeSynchronously(task: task, payload: payload, inputsOffset: offset)
                            ?? executor.run { await runner.execute(task: task, payload: payload, inputsOffset: offset) }
                    } else {
                        // The install failed (and was reported): every item of the call fails.
                        reply = ChunkReply(
                            frame: ResultBody.failAll(
                                task,
                                MultiprocessingError(
                                    .typeNotFound, "the call's function could not be installed in this worker")),
                            computeNanos: 0)
                    }
                    held.lastChunkNanos[task.callID] = reply.computeNanos
                    if settings.holdsShortResults, reply.computeNanos < HeldReplies.holdsResultsOfChunksUnderNanos,
                        held.bytes.count + reply.frame.count <= HeldReplies.maximumHeldBytes
                    {
                        held.bytes.append(contentsOf: reply.frame)
                    } else {
                        try held.write(to: channel)
                        try send(reply.frame)
                    }
                    assembler.recycle(&frame.payload)  // the next large task reuses its memory
                case .release:
                    let callID = try frame.payload.withUnsafeBytes { raw throws in
                        var reader = ByteReader(raw)
                        return try reader.readVarint()
                    }
                    runners[callID] = nil
                    held.lastChunkNanos[callID] = nil
                case .initialize:
                    try held.write(to: channel)
                    try runInitializer(frame.payload, executor: executor)
                case .hello, .result, .fatal, .installFailed, .ready, .challenge, .authenticate, .authenticated,
                    .hostHello, .startWorker, .stopWorker, .workerExited, .hostSignal:
                    throw MultiprocessingError(
                        .malformedFrame, "the parent sent a \(frame.kind) frame, which a worker never takes")
                }
            }
            // Nothing complete is left to answer: what is held goes out before blocking.
            try held.write(to: channel)
            // A large frame's payload is read straight into its own array.
            if let filled = try assembler.fillDirectly({ raw throws in
                try Platform.read(channel, into: raw.baseAddress!, count: raw.count)
            }) {
                if filled == 0 { return }  // the parent closed the channel
                continue
            }
            let wanted = max(buffer.count, min(assembler.bytesWanted, settings.maximumPayload + Frame.headerSize))
            if wanted > buffer.count { buffer = [UInt8](repeating: 0, count: wanted) }
            let n = try buffer.withUnsafeMutableBytes { raw throws in
                try Platform.read(channel, into: raw.baseAddress!, count: raw.count)
            }
            if n == 0 { return }  // the parent closed the channel: an orderly end
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Runs the pool's initializer; answers `ready`, or reports the failure and exits.
    private func runInitializer(_ payload: [UInt8], executor: WorkerExecutor) throws {
        let failure: MultiprocessingError?
        do {
            let initializer = try payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                let typeName = try reader.readString()
                let rest = UnsafeRawBufferPointer(rebasing: raw[reader.offset...])
                return try makeInitializer(typeName: typeName, bytes: rest)
            }
            failure = executor.run { await initializer.run() }
        } catch {
            failure = MultiprocessingError.from(error)
        }
        if let failure {
            try send(Message.Failure(code: failure.code.description, message: failure.message).frame(.fatal))
            Platform.exitFlushing(WorkerMode.initializerFailedStatus)
        }
        try send(Frame.encode(.ready) { _ in })
    }

    /// A thread that ends the worker when the parent goes away, even while the main
    /// thread is busy in a long computation: it polls the channel for the parent's end
    /// closing (POLLRDHUP / POLLHUP: the parent closed it, or died) without reading from
    /// it, and checks `getppid()` every half second. So the parent needs no descriptor of
    /// its own per worker for this.
    private func startLifeline() {
        let parent = settings.parentPID
        let channel = channel
        do {
            try OSThread.start(name: "mp-lifeline") {
                // Only hangups wake this poll (POLLHUP and POLLERR are always reported);
                // data for the main thread does not.
                while true {
                    let hungUp = Platform.waitForHangUp(channel, milliseconds: 500)
                    if hungUp || Platform.parentProcessID != parent {
                        Platform.exitImmediately(0)
                    }
                }
            }
        } catch {
            Platform.writeToStandardError(
                "swift-multiprocessing worker: cannot start the lifeline thread (\(describe(error))); exiting\n")
            Platform.exitImmediately(1)
        }
    }
}
