#if os(Linux)
/// What the supervisor tells the task that waits on a call.
enum CallEvent: Sendable {
    /// A chunk's results arrived (decode them from `payload` starting at `offset`).
    case results(
        Message.Result, range: Range<Int>, payload: [UInt8], offset: Int, worker: MultiprocessingError.WorkerIdentity)
    /// These items failed together: their worker died, or their inputs could not be encoded.
    case chunkFailed(range: Range<Int>, MultiprocessingError)
    /// The input ran dry: the call has `total` items in all.
    case ended(total: Int)
    /// The whole call failed (its function could not be installed, the pool closed).
    case failed(MultiprocessingError)
}

/// What a call's input produced for one chunk.
enum ProducedChunk {
    /// `count` items, encoded as a task frame.
    case frame(count: Int, [UInt8])
    /// `count` items that could not be encoded.
    case failed(count: Int, MultiprocessingError)
}

/// One call (a `map`, a stream, an `apply`) as the supervisor sees it: type-erased, on the
/// loop thread.
final class CallRecord: @unchecked Sendable {
    let id: UInt64
    /// The install frame: the function's type name and encoded value.
    let installFrame: [UInt8]
    var schedule: CallSchedule<[UInt8]>
    /// Takes up to `maxCount` items from the input, starting at item `firstIndex`, and
    /// encodes them as the task frame of chunk `chunkID`; `nil` when the input is dry.
    /// Called only on the loop thread, in order.
    let produce: (_ chunkID: UInt64, _ firstIndex: Int, _ maxCount: Int) -> ProducedChunk?
    let deliver: @Sendable (CallEvent) -> Void
    /// Called once when the supervisor forgets the call (it ends the caller's event stream).
    let onForget: @Sendable () -> Void

    init(
        id: UInt64, installFrame: [UInt8], schedule: CallSchedule<[UInt8]>,
        produce: @escaping (UInt64, Int, Int) -> ProducedChunk?,
        deliver: @escaping @Sendable (CallEvent) -> Void,
        onForget: @escaping @Sendable () -> Void
    ) {
        self.id = id
        self.installFrame = installFrame
        self.schedule = schedule
        self.produce = produce
        self.deliver = deliver
        self.onForget = onForget
    }
}

/// Owns the worker processes and the calls of one pool; see `README.md` in this folder.
///
/// Everything here runs on the event loop's thread. The public pool talks to it only
/// through ``start()``, ``submit(_:)``, ``finish(callID:)`` and ``close()``, which hop to
/// that thread.
final class Supervisor: @unchecked Sendable {
    enum State { case starting, running, closing, closed }

    /// How many chunks one worker may hold at once: the one it runs and one waiting, so
    /// it never idles while its next chunk crosses the socket. More would hurt balance.
    static let chunksPerWorker = 2
    /// A slot whose worker fails to start this many times in a row is given up.
    static let maximumConsecutiveStartFailures = 3
    /// How long a closing pool waits for workers to exit before it kills them.
    static let exitGraceNanos: UInt64 = 2_000_000_000

    let loop: EventLoop
    let launcher: LocalLauncher
    let workerCount: Int
    let maximumPayload: Int
    let handshakeTimeoutNanos: UInt64
    private let buildID = Platform.executableBuildID()

    private var state = State.starting
    private var slots: [WorkerConnection?]
    private var startFailures: [Int]
    private var calls: [UInt64: CallRecord] = [:]
    /// Calls that still have items to hand out, oldest first.
    private var callOrder: [UInt64] = []
    private var nextChunkID: UInt64 = 1
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 16)
    private var startWaiter: CheckedContinuation<Void, any Error>?
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var killTimer: UInt64?

    init(workerCount: Int, maximumPayload: Int, handshakeTimeoutNanos: UInt64) throws {
        loop = try EventLoop()
        launcher = LocalLauncher(maximumPayload: maximumPayload)
        self.workerCount = workerCount
        self.maximumPayload = maximumPayload
        self.handshakeTimeoutNanos = handshakeTimeoutNanos
        slots = Array(repeating: nil, count: workerCount)
        startFailures = Array(repeating: 0, count: workerCount)
        try loop.start(name: "mp-supervisor")
    }

    // MARK: - Entry points (any thread)

    /// Spawns every worker and returns when all have completed the handshake.
    func start() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            loop.execute { [self] in
                startWaiter = continuation
                for slot in 0..<workerCount {
                    do {
                        try spawn(slot: slot)
                    } catch {
                        failStart(error)
                        return
                    }
                }
            }
        }
    }

    func submit(_ call: CallRecord) {
        loop.execute { [self] in
            guard state == .running else {
                call.deliver(.failed(Self.closedError()))
                call.onForget()
                return
            }
            calls[call.id] = call
            callOrder.append(call.id)
            pump()
        }
    }

    /// Forgets a call (finished, or failed): no more of its chunks are handed out, results
    /// still on their way are dropped, workers release its function.
    ///
    /// With `stopRunningWork` (the caller was cancelled, or stopped consuming a stream),
    /// workers still running chunks of the call are stopped (SIGKILL) and replaced, so no
    /// orphaned work goes on; chunks of other calls they held are handed out again.
    func finish(callID: UInt64, stopRunningWork: Bool = false) {
        loop.execute { [self] in
            guard let call = calls.removeValue(forKey: callID) else { return }
            call.onForget()
            callOrder.removeAll { $0 == callID }
            for case let worker? in slots where worker.installed.contains(callID) {
                worker.installed.remove(callID)
                if stopRunningWork, worker.phase == .ready, worker.inFlight.first?.callID == callID {
                    worker.retiring = true
                    Platform.kill(worker.pid, 9)
                    continue
                }
                if let frame = try? Message.releaseFrame(callID: callID) { try? worker.send(frame) }
            }
        }
    }

    /// The consumer of a stream took the results of `chunks` chunks: more may be sent.
    func consumed(callID: UInt64, chunks: Int) {
        loop.execute { [self] in
            guard let call = calls[callID] else { return }
            call.schedule.consumed(chunks: chunks)
            if !callOrder.contains(callID) && !call.schedule.isExhausted { callOrder.append(callID) }
            pump()
        }
    }

    /// Stops every worker (politely, then with SIGKILL after a grace period), fails
    /// calls still pending with ``MultiprocessingError/Code/poolClosed``, and returns
    /// once every worker process has been reaped.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute { [self] in
                if state == .closed {
                    continuation.resume()
                    return
                }
                closeWaiters.append(continuation)
                beginClosing()
            }
        }
    }

    /// Starts closing without waiting (used when a pool is dropped unclosed).
    func closeDetached() {
        loop.execute { [self] in beginClosing() }
    }

    static func closedError() -> MultiprocessingError {
        MultiprocessingError(
            .poolClosed,
            "the pool is closed: create a new pool, or keep using this one inside its withProcessPool { } body")
    }

    // MARK: - Workers

    private func spawn(slot: Int) throws {
        let spawned = try launcher.spawn(slot: slot)
        let worker = WorkerConnection(slot: slot, spawned: spawned, maximumPayload: maximumPayload)
        slots[slot] = worker
        do {
            worker.channelToken = try loop.register(
                worker.channel, [.readable, .writable, .edgeTriggered],
                EventHandler { [weak self, unowned worker] readable, writable, hangup in
                    self?.channelEvent(worker, readable: readable, writable: writable, hangup: hangup)
                })
            worker.processToken = try loop.register(
                worker.processHandle, .readable,
                EventHandler { [weak self, unowned worker] _, _, _ in self?.processExited(worker) })
        } catch {
            Platform.kill(worker.pid, 9)
            throw error
        }
        worker.handshakeTimer = loop.schedule(afterNanoseconds: handshakeTimeoutNanos) { [weak self, unowned worker] in
            guard let self, worker.phase == .handshaking else { return }
            worker.connectionError = MultiprocessingError(
                .handshakeFailed,
                "\(worker.identity) did not complete the start-up handshake within \(handshakeTimeoutNanos / 1_000_000_000) s: does your program do slow work before calling Multiprocessing.bootstrap()? Call it first in main",
                worker: worker.identity)
            Platform.kill(worker.pid, 9)
            _ = self
        }
    }

    private func channelEvent(_ worker: WorkerConnection, readable: Bool, writable: Bool, hangup: Bool) {
        guard worker.hasChannel else { return }
        do {
            if writable { try worker.flush() }
            if readable || hangup {
                let open = try worker.readAvailable(into: &readBuffer)
                try processFrames(worker)
                if !open { brokenChannel(worker, nil) }
            }
        } catch {
            brokenChannel(worker, .from(error))
        }
    }

    /// The channel ended or broke: stop using the worker and make sure its process ends;
    /// its exit (reported through the process handle) settles its chunks.
    private func brokenChannel(_ worker: WorkerConnection, _ error: MultiprocessingError?) {
        if let error, worker.connectionError == nil {
            worker.connectionError = error
            Platform.kill(worker.pid, 9)
        }
        worker.phase = .exiting
        worker.closeChannel(loop: loop)
    }

    private func processFrames(_ worker: WorkerConnection) throws {
        while let frame = try worker.assembler.next() {
            try handle(frame, from: worker)
        }
    }

    private func handle(_ frame: Frame, from worker: WorkerConnection) throws {
        switch frame.kind {
        case .hello:
            guard worker.phase == .handshaking else {
                throw MultiprocessingError(.malformedFrame, "\(worker.identity) sent a second hello")
            }
            let hello = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return try Message.Hello(&reader)
            }
            guard hello.buildID == buildID else {
                throw MultiprocessingError(
                    .protocolMismatch,
                    "\(worker.identity) is a different build of the program (build id differs): rebuild, and run the same binary everywhere"
                )
            }
            worker.host = hello.host
            worker.phase = .ready
            if let timer = worker.handshakeTimer { loop.cancelTimer(timer) }
            startFailures[worker.slot] = 0
            if state == .starting, slots.allSatisfy({ $0?.phase == .ready }) {
                state = .running
                startWaiter?.resume()
                startWaiter = nil
            }
            pump()
        case .result:
            let (header, offset) = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return (try Message.Result(&reader), reader.offset)
            }
            guard let first = worker.inFlight.first, first.callID == header.callID, first.chunkID == header.chunkID
            else {
                throw MultiprocessingError(.malformedFrame, "\(worker.identity) answered a chunk it was not running")
            }
            worker.inFlight.removeFirst()
            if let call = calls[header.callID] {
                call.schedule.completed(first.range, computeNanos: header.computeNanos)
                call.deliver(
                    .results(
                        header, range: first.range, payload: frame.payload, offset: offset, worker: worker.identity))
            }
            pump()
        case .installFailed, .fatal:
            let failure = try frame.payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw)
                return try Message.Failure(&reader, kind: frame.kind)
            }
            if frame.kind == .fatal {
                worker.fatalMessage = failure
                return
            }
            if let call = calls[failure.callID] {
                let code: MultiprocessingError.Code =
                    failure.code == MultiprocessingError.Code.typeNotFound.description ? .typeNotFound : .decodingFailed
                call.deliver(
                    .failed(
                        MultiprocessingError(
                            code, "\(worker.identity) could not install the call's function: \(failure.message)",
                            worker: worker.identity)))
            }
        case .install, .task, .release:
            throw MultiprocessingError(
                .malformedFrame, "\(worker.identity) sent a \(frame.kind) frame, which only the parent sends")
        }
    }

    private func processExited(_ worker: WorkerConnection) {
        // Frames the worker wrote before it exited come first.
        if worker.hasChannel {
            channelEvent(worker, readable: true, writable: false, hangup: true)
            if worker.hasChannel { brokenChannel(worker, nil) }
        }
        let termination: ProcessTermination
        do {
            guard let reaped = try Platform.reap(worker.processHandle, wait: false) else { return }
            termination = reaped
        } catch {
            termination = .exited(-1)
        }
        worker.closeProcessHandle(loop: loop)
        if let timer = worker.handshakeTimer { loop.cancelTimer(timer) }
        if slots[worker.slot] === worker { slots[worker.slot] = nil }

        switch state {
        case .starting:
            failStart(startError(worker, termination))
        case .running:
            settleLostWork(worker, termination)
            respawn(after: worker, termination)
            pump()
        case .closing:
            settleLostWork(worker, termination)
            finishClosingIfDone()
        case .closed:
            break
        }
    }

    /// The chunk a dead worker was running fails; the ones waiting behind it go back to
    /// their calls, to be handed to another worker.
    private func settleLostWork(_ worker: WorkerConnection, _ termination: ProcessTermination) {
        for (position, chunk) in worker.inFlight.enumerated() {
            guard let call = calls[chunk.callID] else { continue }
            if position == 0 && !worker.retiring {
                call.schedule.abandoned(chunk.range)
                call.deliver(.chunkFailed(range: chunk.range, deathError(worker, termination, running: chunk.range)))
            } else {
                call.schedule.giveBack(.init(id: chunk.chunkID, range: chunk.range, payload: chunk.frame))
                if !callOrder.contains(chunk.callID) { callOrder.append(chunk.callID) }
            }
        }
        worker.inFlight.removeAll()
    }

    private func respawn(after worker: WorkerConnection, _ termination: ProcessTermination) {
        let slot = worker.slot
        if worker.phase == .handshaking || worker.fatalMessage != nil {
            startFailures[slot] += 1
        }
        if startFailures[slot] >= Self.maximumConsecutiveStartFailures {
            Platform.writeToStandardError(
                "swift-multiprocessing: worker slot \(slot) failed to start \(startFailures[slot]) times in a row (last: \(startError(worker, termination).message)); the pool goes on with \(slots.compactMap { $0 }.count) workers\n"
            )
            if slots.allSatisfy({ $0 == nil }) {
                let error = MultiprocessingError(
                    .workerDied,
                    "no worker of the pool is left: workers could not be restarted (last: \(startError(worker, termination).message))"
                )
                for call in calls.values {
                    call.deliver(.failed(error))
                    call.onForget()
                }
                calls.removeAll()
                callOrder.removeAll()
            }
            return
        }
        do {
            try spawn(slot: slot)
        } catch {
            startFailures[slot] += 1
            Platform.writeToStandardError(
                "swift-multiprocessing: could not replace \(worker.identity): \(describe(error))\n")
        }
    }

    private func deathError(_ worker: WorkerConnection, _ termination: ProcessTermination, running range: Range<Int>)
        -> MultiprocessingError
    {
        var message = "\(worker.identity) \(termination) while running item"
        message +=
            range.count == 1
            ? " \(range.lowerBound)" : "s \(range.lowerBound)..<\(range.upperBound) (one of them was executing)"
        if let fatal = worker.fatalMessage { message += "; it reported: \(fatal.message)" }
        if let broken = worker.connectionError { message += "; the connection had failed first: \(broken.message)" }
        message += ". The worker has been replaced; anything it printed went to this program's stdout or stderr."
        return MultiprocessingError(
            .workerDied, message, itemIndex: range.count == 1 ? range.lowerBound : nil, worker: worker.identity,
            termination: termination, underlying: worker.connectionError)
    }

    private func startError(_ worker: WorkerConnection, _ termination: ProcessTermination) -> MultiprocessingError {
        if termination == .exited(WorkerMode.bootstrapMissingStatus)
            || worker.fatalMessage?.code == MultiprocessingError.Code.bootstrapMissing.description
        {
            return Self.bootstrapMissingError(
                detail:
                    "the worker process (pid \(worker.pid)) ran your program's main, which reached pool creation without calling it"
            )
        }
        if let error = worker.connectionError { return error }
        var message = "\(worker.identity) \(termination) before completing the start-up handshake"
        if let fatal = worker.fatalMessage { message += ": \(fatal.message)" }
        message += ". Its error output, if any, is above."
        return MultiprocessingError(.handshakeFailed, message, worker: worker.identity, termination: termination)
    }

    static func bootstrapMissingError(detail: String) -> MultiprocessingError {
        MultiprocessingError(
            .bootstrapMissing,
            "Multiprocessing.bootstrap() was not called: \(detail). Make `Multiprocessing.bootstrap()` the first line of your program's main (before any pool is created): worker processes are started from the same executable and enter worker mode there."
        )
    }

    private func failStart(_ error: any Error) {
        guard state == .starting else { return }
        startWaiter?.resume(throwing: error)
        startWaiter = nil
        beginClosing()
    }

    // MARK: - Scheduling

    /// Hands out chunks to workers with room, filling every worker to one chunk before any
    /// gets a second.
    private func pump() {
        guard state == .running else { return }
        for depth in 1...Self.chunksPerWorker {
            for case let worker? in slots where worker.phase == .ready && worker.inFlight.count < depth {
                guard let (call, chunk) = nextChunk() else { return }
                dispatch(call, chunk, to: worker)
            }
        }
    }

    /// The next chunk to send: a given-back one, else new items from the oldest call that
    /// has some and room in its window.
    private func nextChunk() -> (CallRecord, CallSchedule<[UInt8]>.Chunk)? {
        var index = 0
        while index < callOrder.count {
            guard let call = calls[callOrder[index]] else {
                callOrder.remove(at: index)
                continue
            }
            if let chunk = call.schedule.takeRequeued() { return (call, chunk) }
            if let size = call.schedule.nextChunkSize() {
                let chunkID = nextChunkID
                nextChunkID += 1
                let first = call.schedule.nextIndex
                switch call.produce(chunkID, first, size) {
                case .frame(let count, let frame)?:
                    call.schedule.handedOut(count: count)
                    return (call, .init(id: chunkID, range: first..<(first + count), payload: frame))
                case .failed(let count, let error)?:
                    call.schedule.handedOut(count: count)
                    call.schedule.abandoned(first..<(first + count))
                    call.deliver(.chunkFailed(range: first..<(first + count), error))
                    continue
                case nil:
                    call.schedule.endOfSource()
                    call.deliver(.ended(total: call.schedule.nextIndex))
                }
            }
            if call.schedule.isExhausted {
                callOrder.remove(at: index)
            } else {
                index += 1  // its window is full: the consumer will make room
            }
        }
        return nil
    }

    private func dispatch(_ call: CallRecord, _ chunk: CallSchedule<[UInt8]>.Chunk, to worker: WorkerConnection) {
        let range = chunk.range
        do {
            guard chunk.payload.count - Frame.headerSize <= maximumPayload else {
                throw MultiprocessingError(
                    .frameTooLarge,
                    "the inputs of items \(range.lowerBound)..<\(range.upperBound) encode to \(chunk.payload.count) bytes, above the frame limit of \(maximumPayload) bytes: pass a smaller chunkSize, send smaller items, or raise ProcessPool.Options.maximumFrameBytes"
                )
            }
            if !worker.installed.contains(call.id) {
                try worker.send(call.installFrame)
                worker.installed.insert(call.id)
            }
            worker.inFlight.append(.init(callID: call.id, chunkID: chunk.id, range: range, frame: chunk.payload))
            try worker.send(chunk.payload)
        } catch {
            let error = MultiprocessingError.from(error)
            if error.code == .systemCallFailed {
                // The socket broke: the worker's exit settles the chunk (it is in flight).
                brokenChannel(worker, error)
            } else {
                call.schedule.abandoned(range)
                call.deliver(.chunkFailed(range: range, error))
            }
        }
    }

    // MARK: - Closing

    private func beginClosing() {
        guard state == .starting || state == .running else {
            finishClosingIfDone()
            return
        }
        state = .closing
        let error = Self.closedError()
        for call in calls.values {
            call.deliver(.failed(error))
            call.onForget()
        }
        calls.removeAll()
        callOrder.removeAll()
        for case let worker? in slots {
            worker.phase = .exiting
            worker.closeChannel(loop: loop)
        }
        killTimer = loop.schedule(afterNanoseconds: Self.exitGraceNanos) { [weak self] in
            guard let self else { return }
            for case let worker? in slots { Platform.kill(worker.pid, 9) }
        }
        finishClosingIfDone()
    }

    private func finishClosingIfDone() {
        guard state == .closing, slots.allSatisfy({ $0 == nil }) else { return }
        state = .closed
        if let killTimer { loop.cancelTimer(killTimer) }
        let waiters = closeWaiters
        closeWaiters.removeAll()
        loop.stop { for waiter in waiters { waiter.resume() } }
    }
}
#endif
