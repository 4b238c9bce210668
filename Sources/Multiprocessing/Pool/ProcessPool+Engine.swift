extension ProcessPool {
    /// Where a pool's workers run (``Options/engine``, or `MP_ENGINE` in the environment).
    ///
    /// Both engines run the same calls with the same chunking, ordering, errors, progress,
    /// report and journal. Only where a chunk runs differs:
    ///
    /// - ``processes`` (the default): worker processes of this executable. Inputs and
    ///   outputs are encoded; a crash fails only its items; ``Options/itemTimeout`` stops an
    ///   item with its worker; workers span the nodes of a Slurm allocation.
    /// - ``threads``: threads of this process (one per worker, the same CPU rules), like
    ///   Python's `multiprocessing.dummy`. Nothing is encoded or copied and no process is
    ///   started: for a debugger, for a function that must share memory with the program,
    ///   and for items too small to pay for encoding. What threads cannot do: a crash in
    ///   the function (a trap, `fatalError`, a signal) ends the whole program; a running item
    ///   cannot be stopped, so ``Options/itemTimeout`` is refused
    ///   (``MultiprocessingError/Code/invalidArgument``) and cancelling a call drops its
    ///   results while a chunk already running finishes; the ``Options/initializer`` runs
    ///   once, in this process, before the pool starts; ``Options/maximumItemsPerWorker``
    ///   and ``Options/retries`` mean nothing (no worker dies); the pool stays on this node.
    ///
    /// The function and its inputs stay `Codable & Sendable`, so that a program that runs
    /// with one engine runs with the other unchanged.
    public struct Engine: Hashable, Sendable, CustomStringConvertible {
        let name: String

        private init(name: String) { self.name = name }

        /// Worker processes (the default).
        public static let processes = Engine(name: "processes")
        /// Threads of this process.
        public static let threads = Engine(name: "threads")

        /// `processes` or `threads`: the value `MP_ENGINE` takes.
        public var description: String { name }

        /// The engine `MP_ENGINE` names, or `nil` for any other value.
        init?(environmentValue value: String) {
            switch value.lowercased() {
            case "processes", "process": self = .processes
            case "threads", "thread": self = .threads
            default: return nil
            }
        }

        /// The engine of a pool: the options' (code wins), else `MP_ENGINE`'s (a value that
        /// names no engine is named in a warning on stderr and ignored), else processes.
        /// - Throws: ``MultiprocessingError/Code/invalidArgument`` for threads with an
        ///   ``Options/itemTimeout``: a thread cannot be stopped.
        static func resolve(_ options: Options, environment: String?) throws -> Engine {
            var engine = options.engine
            if engine == nil, let value = environment, !value.isEmpty {
                engine = Engine(environmentValue: value)
                if engine == nil {
                    Platform.writeToStandardError(
                        "swift-multiprocessing: warning: MP_ENGINE=\(value) names no engine (use processes or threads); it is ignored and the pool uses processes\n"
                    )
                }
            }
            let resolved = engine ?? Engine.processes
            if resolved == .threads, let timeout = options.itemTimeout {
                throw MultiprocessingError(
                    .invalidArgument,
                    "itemTimeout (\(timeout)) cannot be used with the threads engine\(options.engine == nil ? " (MP_ENGINE=threads)" : ""): a thread cannot be stopped. Remove the timeout, or use the processes engine, which stops such an item with its worker"
                )
            }
            return resolved
        }
    }

    /// How the chunks of a call of `function` are made for the threads engine: its inputs
    /// as they are, and the code that runs them; `nil` with processes (chunks are task frames).
    /// The inputs' size in memory goes to `sizeHint`, so that automatic chunks stay near
    /// ``FrameSizeHint/automaticChunkBytes`` as they do on processes (cache-sized chunks).
    func inProcessChunks<F: WorkerFunction>(_ function: F) -> InProcessChunker<F.Input>? {
        guard engine == .threads else { return nil }
        return { first, inputs, sizeHint in
            sizeHint.record(bytes: inputs.count * MemoryLayout<F.Input>.stride, items: inputs.count)
            return .inProcess(
                count: inputs.count,
                InProcessChunk { worker in Self.runInProcess(function, first: first, inputs, worker: worker) })
        }
    }

    /// Runs a chunk on the calling thread (one of the threads engine's own) and returns its
    /// outcome as a consumer reads it: the same errors, with the same texts, as a worker
    /// process's result frame gives.
    static func runInProcess<F: WorkerFunction>(
        _ function: F, first: Int, _ inputs: ArraySlice<F.Input>, worker: MultiprocessingError.WorkerIdentity
    ) -> ComputedChunk {
        let values = Array(inputs)
        let run = 0..<values.count
        let context = _ChunkContext(progress: nil, timesItems: false)
        let began = Platform.monotonicNanos()
        let outcome =
            function._runChunkSynchronously(values, run: run, context: context)
            ?? ThreadEngine.wait { await function._runChunk(values, run: run, context: context) }
        let elapsed = Platform.monotonicNanos() &- began
        let chunk: ResultsCore<F.Output>.Chunk
        if outcome.failures.isEmpty {
            chunk = .values(start: first, outcome.outputs)
        } else {
            var failures: [Int: _ItemFailure] = [:]
            for failure in outcome.failures { failures[failure.offset] = failure }
            var mixed: [Result<F.Output, MultiprocessingError>] = []
            mixed.reserveCapacity(values.count)
            var next = 0
            for offset in run {
                let index = first + offset
                if let failure = failures[offset] {
                    mixed.append(
                        .failure(
                            failure.code.map {
                                ResultBody.failedError(
                                    index: index, worker: worker, code: $0, message: failure.message)
                            }
                                ?? ResultBody.threwError(
                                    index: index, worker: worker, type: failure.type, message: failure.message)))
                } else {
                    mixed.append(.success(outcome.outputs[next]))
                    next += 1
                }
            }
            chunk = .mixed(start: first, mixed)
        }
        return ComputedChunk(
            range: first..<(first + values.count), outcome: chunk, computeNanos: elapsed,
            failed: outcome.failures.count)
    }
}

/// Makes the chunk of `inputs` (items from `first` on) for the threads engine.
typealias InProcessChunker<Input> = (_ first: Int, _ inputs: ArraySlice<Input>, _ sizeHint: FrameSizeHint) ->
    ProducedChunk

extension ComputedChunk {
    /// The outcome, as the call's output type (the pool made it so).
    func chunk<Output: Decodable & Sendable>(as type: Output.Type) -> ResultsCore<Output>.Chunk {
        outcome as! ResultsCore<Output>.Chunk
    }
}

/// Journals one chunk computed on a thread: item by item, encoded for the journal file.
func record<Output: Codable & Sendable>(
    _ writer: JournalCallWriter, _ chunk: ResultsCore<Output>.Chunk, _ indices: JournalIndices,
    _ hashes: ArraySlice<UInt64>
) {
    switch chunk {
    case .values(_, let outputs): writer.recordEach(indices: indices, hashes: hashes, outputs: outputs.map { $0 })
    case .mixed(_, let outcomes):
        writer.recordEach(indices: indices, hashes: hashes, outputs: outcomes.map { try? $0.get() })
    case .failed: break
    }
}
