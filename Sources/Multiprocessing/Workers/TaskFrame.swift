/// An encoded chunk of inputs, as sent to a worker, with what is needed to re-send part
/// of it: when a worker dies in the middle of a chunk, the items it had not finished go
/// to another worker in a new frame carrying the same input bytes and a narrower run
/// range, without asking the input for them again (a lazy input cannot give them twice).
struct TaskFrame: Sendable {
    let bytes: [UInt8]
    let task: Message.Task
    /// Where the encoded inputs start in `bytes`.
    let inputsOffset: Int

    init(bytes: [UInt8], task: Message.Task, inputsOffset: Int) {
        self.bytes = bytes
        self.task = task
        self.inputsOffset = inputsOffset
    }

    /// Encodes the task header followed by the encoded inputs.
    init(task: Message.Task, capacity: Int = 64, encodeInputs: (inout ByteWriter) throws -> Void) throws {
        var offset = 0
        bytes = try Frame.encode(.task, capacity: capacity) { w throws in
            task.write(to: &w)
            offset = w.count - Frame.headerSize
            try encodeInputs(&w)
        }
        self.task = task
        inputsOffset = offset
    }

    /// The same inputs, running only offsets `run` (a subrange of this frame's run range).
    func narrowed(to run: Range<Int>, chunkID: UInt64) throws -> TaskFrame {
        var narrowed = task
        narrowed.chunkID = chunkID
        narrowed.runStart = run.lowerBound
        narrowed.runEnd = run.upperBound
        let inputs = bytes[(Frame.headerSize + inputsOffset)...]
        return try TaskFrame(task: narrowed, capacity: bytes.count) { w in
            inputs.withUnsafeBytes { w.write(contentsOf: $0) }
        }
    }
}
