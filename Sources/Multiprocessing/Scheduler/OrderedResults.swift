/// Collects one call's results as chunks arrive, in any order, and hands them back in
/// input order. Pure logic.
///
/// Chunks are appended to one array reserved at its final size as soon as every chunk
/// before them has arrived (usually at once: results mostly come in order); a chunk that
/// arrives early waits, by its start, for the ones ahead of it. Each output is copied
/// once, and a chunk's decoded array is freed (and its memory reused) right away. Loops
/// use indices, because this code is generic and not specialized for the caller's types.
struct OrderedResults<Output> {
    let count: Int
    /// The outputs of items `0..<joined.count`.
    private var joined: [Output] = []
    /// Chunks that arrived before a chunk ahead of them, by their first index.
    private var early: [Int: [Output]] = [:]
    /// Outputs of single items (from chunks in which other items failed).
    private var singles: [(index: Int, value: Output)] = []
    /// Results received so far.
    private(set) var received = 0

    init(count: Int) {
        self.count = count
    }

    var isComplete: Bool { received == count }
    var isEmpty: Bool { received == 0 }

    /// A chunk's outputs, for the items starting at `start`.
    mutating func add(chunkStartingAt start: Int, _ values: [Output]) {
        received += values.count
        guard start == joined.count else {
            early[start] = values
            return
        }
        if joined.isEmpty && values.count == count {
            joined = values  // the whole call in one chunk: no copy
            return
        }
        if joined.capacity < count { joined.reserveCapacity(count) }
        joined.append(contentsOf: values)
        while !early.isEmpty, let next = early.removeValue(forKey: joined.count) {
            joined.append(contentsOf: next)
        }
    }

    /// One item's output (from a chunk in which other items failed).
    mutating func add(_ value: Output, at index: Int) {
        singles.append((index, value))
        received += 1
    }

    /// All outputs in input order; only when complete.
    func inOrder() -> [Output] {
        precondition(
            isComplete && singles.isEmpty && early.isEmpty, "results are complete only when every chunk succeeded")
        return joined
    }

    /// What has arrived, one element per input, `nil` where nothing has.
    func partial() -> [Output?] {
        var result = [Output?](repeating: nil, count: count)
        var index = 0
        while index < joined.count {
            result[index] = joined[index]
            index += 1
        }
        for (start, values) in early {
            var offset = 0
            while offset < values.count {
                result[start + offset] = values[offset]
                offset += 1
            }
        }
        for single in singles { result[single.index] = single.value }
        return result
    }
}
