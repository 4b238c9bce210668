/// Runs chunks of one call in a worker: the decoded function value, and the code that
/// turns a task frame into a result frame. One per call per worker.
protocol ChunkRunner: Sendable {
    /// Runs the task's items and returns the result frame (never throws: failures of
    /// items, or of decoding the inputs, are reported inside the frame).
    nonisolated(nonsending) func execute(task: Message.Task, payload: [UInt8], inputsOffset: Int) async -> ChunkReply

    /// The same for a synchronous function, with no task; `nil` when the function is
    /// `async` (then ``execute(task:payload:inputsOffset:)`` runs it).
    func executeSynchronously(task: Message.Task, payload: [UInt8], inputsOffset: Int) -> ChunkReply?
}

/// A chunk's result frame, and how long its items ran (0 when they did not run).
struct ChunkReply {
    var frame: [UInt8]
    var computeNanos: UInt64
}

/// What a worker needs to know to run chunks, beyond the function.
struct RunnerContext: Sendable {
    let maximumPayload: Int
    let progress: ProgressPage?
    /// Whether to note each item's start time (only when items have a timeout).
    let timesItems: Bool
    /// Whether to put each chunk's start and end times in its result frame (the call was
    /// installed with ``Message/Install/timesChunks``: the pool writes a timeline).
    var timesChunks = false
}

/// Looks up a function type by its mangled name and decodes its value (worker side).
func makeChunkRunner(typeName: String, functionBytes: UnsafeRawBufferPointer, context: RunnerContext) throws
    -> any ChunkRunner
{
    guard let type = _typeByName(typeName) else {
        throw MultiprocessingError(
            .typeNotFound,
            "this worker cannot find the function type with mangled name \(typeName): "
                + UnfindableType(mangledName: typeName).explanation(declaration: nil)
        )
    }
    guard let functionType = type as? any WorkerFunction.Type else {
        throw MultiprocessingError(
            .typeNotFound,
            "the type \(String(reflecting: type)) does not conform to ParallelFunction or AsyncParallelFunction in this worker"
        )
    }
    return try makeRunner(functionType, functionBytes, context)
}

private func makeRunner<F: WorkerFunction>(_ type: F.Type, _ bytes: UnsafeRawBufferPointer, _ context: RunnerContext)
    throws -> any ChunkRunner
{
    var reader = ByteReader(bytes)
    let function = try BinaryCodec.decode(F.self, from: &reader)
    return FunctionRunner(function: function, context: context)
}

struct FunctionRunner<F: WorkerFunction>: ChunkRunner {
    let function: F
    let context: RunnerContext
    /// Whether `F` is a ``ParallelFunction`` (asked once, not for every chunk).
    let isSynchronous = F.self is any ParallelFunction.Type
    /// Whether inputs and outputs travel as raw bytes (see ``ItemizedValues/isRaw(_:)``).
    let rawInputs = ItemizedValues.isRaw(F.Input.self)
    let rawOutputs = ItemizedValues.isRaw(F.Output.self)

    /// A chunk's inputs, decoded: the inputs that decoded, in order, in runs of consecutive
    /// offsets, and the items whose input could not be decoded (they fail alone). Plain
    /// arrays, not an array of tuples: a generic tuple type costs a runtime metadata lookup
    /// for every chunk (measured: 15% of a one-item chunk's round trip).
    struct Inputs {
        var values: [F.Input] = []
        /// Consecutive offsets whose inputs are in `values`, back to back.
        var runs: [Range<Int>] = []
        var failures: [Int: MultiprocessingError] = [:]

        /// The input of the item at `offset` (offsets come in increasing order): it joins
        /// the last run when it follows it, else starts a new one.
        mutating func add(_ input: F.Input, at offset: Int) {
            values.append(input)
            if let last = runs.indices.last, runs[last].upperBound == offset {
                runs[last] = runs[last].lowerBound..<(offset + 1)
            } else {
                runs.append(offset..<(offset + 1))
            }
        }

        /// The inputs of run `index` (no copy when there is one run; more happen only
        /// around an item whose input failed).
        func values(ofRun index: Int) -> [F.Input] {
            if runs.count == 1 { return values }
            let start = runs[..<index].reduce(0) { $0 + $1.count }
            return Array(values[start..<(start + runs[index].count)])
        }
    }

    /// The outcome of every item of a chunk's run, in order of offset.
    struct Outcomes {
        var outputs: [F.Output] = []
        /// Items that threw, by offset.
        var threw: [Int: _ItemFailure] = [:]
        /// Items the library could not carry (input not decodable), by offset.
        var failures: [Int: MultiprocessingError] = [:]
    }

    nonisolated(nonsending) func execute(task: Message.Task, payload: [UInt8], inputsOffset: Int) async -> ChunkReply {
        let chunkStart = context.timesChunks ? Platform.monotonicNanos() : 0
        let inputs = start(task, payload, inputsOffset)
        let began = Platform.monotonicNanos()
        var outcomes = Outcomes(failures: inputs.failures)
        for (index, run) in inputs.runs.enumerated() {
            add(await function._runChunk(inputs.values(ofRun: index), run: run, context: itemContext), to: &outcomes)
        }
        return finish(task, outcomes, since: began, chunkStart: chunkStart)
    }

    func executeSynchronously(task: Message.Task, payload: [UInt8], inputsOffset: Int) -> ChunkReply? {
        guard isSynchronous else { return nil }
        let chunkStart = context.timesChunks ? Platform.monotonicNanos() : 0
        let inputs = start(task, payload, inputsOffset)
        let began = Platform.monotonicNanos()
        var outcomes = Outcomes(failures: inputs.failures)
        for (index, run) in inputs.runs.enumerated() {
            // Never nil: a ParallelFunction always has its synchronous chunk loop.
            let outcome = function._runChunkSynchronously(inputs.values(ofRun: index), run: run, context: itemContext)!
            add(outcome, to: &outcomes)
        }
        return finish(task, outcomes, since: began, chunkStart: chunkStart)
    }

    private func add(_ outcome: _ChunkOutcome<F.Output>, to outcomes: inout Outcomes) {
        if outcomes.outputs.isEmpty {
            outcomes.outputs = outcome.outputs
        } else {
            outcomes.outputs.append(contentsOf: outcome.outputs)
        }
        for failure in outcome.failures { outcomes.threw[failure.offset] = failure }
    }

    private var itemContext: _ChunkContext {
        _ChunkContext(progress: context.progress, timesItems: context.timesItems)
    }

    /// Notes the chunk in the progress page and decodes its inputs, item by item unless
    /// they are raw bytes. The page then says `running`.
    private func start(_ task: Message.Task, _ payload: [UInt8], _ inputsOffset: Int) -> Inputs {
        context.progress?.begin(chunkID: task.chunkID, offset: task.runStart, timed: context.timesItems)
        let run = task.runStart..<task.runEnd
        var inputs = Inputs()
        do {
            try payload.withUnsafeBytes { raw throws in
                var reader = ByteReader(raw, offset: inputsOffset)
                if rawInputs {
                    let values = try BinaryCodec.decode([F.Input].self, from: &reader)
                    guard reader.isAtEnd, values.count == task.count else {
                        throw MultiprocessingError(
                            .malformedFrame,
                            "a task frame for \(task.count) items held \(values.count) inputs and \(reader.remaining) stray bytes"
                        )
                    }
                    inputs.values = run == 0..<task.count ? values : Array(values[run])
                    inputs.runs = [run]
                    return
                }
                let table = try ItemizedValues.Table(&reader, count: task.count)
                for offset in run {
                    if case .failed(let code, let message) = table.entries[offset] {
                        // The parent could not encode this input: it fails with the parent's error.
                        inputs.failures[offset] = MultiprocessingError(MultiprocessingError.Code(named: code), message)
                        continue
                    }
                    context.progress?.note(.decoding, offset: offset, timed: context.timesItems)
                    do {
                        inputs.add(try table.decode(F.Input.self, at: offset, in: raw), at: offset)
                    } catch {
                        inputs.failures[offset] = MultiprocessingError(
                            .decodingFailed,
                            "the worker could not decode the input of item \(task.firstIndex + offset) (\(String(reflecting: F.Input.self))): \(describe(error))"
                        )
                    }
                }
            }
        } catch {
            // The frame itself is broken: every item of the run fails.
            inputs.values = []
            inputs.runs = []
            for offset in run {
                inputs.failures[offset] = MultiprocessingError(
                    .decodingFailed,
                    "the worker could not decode the inputs (\(String(reflecting: F.Input.self))): \(describe(error))")
            }
        }
        context.progress?.set(.running)
        return inputs
    }

    /// Encodes the outcomes of a chunk whose items started at `began`; the page is idle after.
    /// When chunks are timed, the frame carries `chunkStart` (before the inputs were
    /// decoded) and, written last, the time its encoding ended.
    private func finish(_ task: Message.Task, _ outcomes: Outcomes, since began: UInt64, chunkStart: UInt64)
        -> ChunkReply
    {
        let elapsed = Platform.monotonicNanos() &- began
        let times = context.timesChunks ? Message.Result.Times(start: chunkStart, end: 0) : nil
        var frame = resultFrame(task, outcomes, elapsed: elapsed, times: times)
        if times != nil { frame.stampEnd(Platform.monotonicNanos()) }
        context.progress?.set(.idle)
        return ChunkReply(frame: frame.bytes, computeNanos: elapsed)
    }

    /// The result frame of a chunk (its layout is ``ResultBody``'s): raw outputs when they
    /// are raw bytes and every item succeeded, else a run of items encoded one by one, so
    /// that an output that cannot be encoded, or is too large for a frame, fails only its
    /// own item.
    private func resultFrame(_ task: Message.Task, _ outcomes: Outcomes, elapsed: UInt64, times: Message.Result.Times?)
        -> ResultFrame
    {
        context.progress?.set(.encoding)
        if rawOutputs, outcomes.threw.isEmpty, outcomes.failures.isEmpty,
            let frame = ResultBody.allSucceeded(
                outcomes.outputs, task: task, computeNanos: elapsed, times: times,
                maximumPayload: context.maximumPayload)
        {
            return frame
        }
        var body = ResultBody.ItemizedWriter(
            task: task, computeNanos: elapsed, times: times, maximumPayload: context.maximumPayload)
        var nextOutput = 0
        let anyFailed = !outcomes.failures.isEmpty || !outcomes.threw.isEmpty
        for offset in task.runStart..<task.runEnd {
            if anyFailed, let failure = outcomes.failures[offset] {
                body.appendFailure(failure)
                continue
            }
            if anyFailed, let threw = outcomes.threw[offset] {
                body.appendThrew(threw)
                continue
            }
            context.progress?.note(.encoding, offset: offset, timed: context.timesItems)
            body.append(outcomes.outputs[nextOutput], index: task.firstIndex + offset)
            nextOutput += 1
        }
        return body.finish()
    }
}

// The chunk loops of the Core protocols, and what they note in the worker's progress page:
// worker-side code, here rather than in Core (which only declares the protocols).

extension _ChunkContext {
    init(progress: ProgressPage?, timesItems: Bool) {
        self.init(progressWords: progress?.wordsForItems, timesItems: timesItems)
    }

    /// Notes that the item at `offset` starts (for crash attribution and timeouts).
    @inlinable
    func noteItem(_ offset: Int) {
        guard let words = progressWords else { return }
        if timesItems { words[3] = _monotonicNanos() }
        words[2] = UInt64(offset)
    }
}

extension ParallelFunction {
    /// Not API: the chunk loop of a synchronous function. Inlinable so that it is
    /// specialized for each function type: the loop calls `callAsFunction` directly.
    @inlinable
    public nonisolated(nonsending) func _runChunk(_ inputs: [Input], run: Range<Int>, context: _ChunkContext) async
        -> _ChunkOutcome<Output>
    {
        _runChunkSynchronously(inputs, run: run, context: context)!
    }

    /// Not API: the chunk loop itself.
    @inlinable
    public func _runChunkSynchronously(_ inputs: [Input], run: Range<Int>, context: _ChunkContext)
        -> _ChunkOutcome<Output>?
    {
        var outputs: [Output] = []
        outputs.reserveCapacity(run.count)
        var failures: [_ItemFailure] = []
        var offset = run.lowerBound
        while offset < run.upperBound {
            context.noteItem(offset)
            do {
                outputs.append(try self(inputs[offset &- run.lowerBound]))
            } catch {
                failures.append(_ItemFailure(offset: offset, error: error))
            }
            _flushOutputIfPending()
            offset += 1
        }
        return _ChunkOutcome(outputs: outputs, failures: failures)
    }
}

extension AsyncParallelFunction {
    /// Not API: the chunk loop of an async function.
    @inlinable
    public nonisolated(nonsending) func _runChunk(_ inputs: [Input], run: Range<Int>, context: _ChunkContext) async
        -> _ChunkOutcome<Output>
    {
        var outputs: [Output] = []
        outputs.reserveCapacity(run.count)
        var failures: [_ItemFailure] = []
        var offset = run.lowerBound
        while offset < run.upperBound {
            context.noteItem(offset)
            do {
                outputs.append(try await self(inputs[offset &- run.lowerBound]))
            } catch {
                failures.append(_ItemFailure(offset: offset, error: error))
            }
            _flushOutputIfPending()
            offset += 1
        }
        return _ChunkOutcome(outputs: outputs, failures: failures)
    }

    /// Not API: an async function has no synchronous chunk loop.
    @inlinable
    public func _runChunkSynchronously(_ inputs: [Input], run: Range<Int>, context: _ChunkContext)
        -> _ChunkOutcome<Output>?
    {
        nil
    }
}

/// Not API: flushes stdout when a function printed (workers' output reaches a Slurm
/// output file after every item).
@usableFromInline
func _flushOutputIfPending() {
    Platform.flushStandardOutputIfPending()
}

/// Not API: monotonic time in nanoseconds.
@usableFromInline
func _monotonicNanos() -> UInt64 { Platform.monotonicNanos() }
