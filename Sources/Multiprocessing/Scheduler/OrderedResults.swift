/// Collects one call's results as chunks arrive, in any order, and hands them back in
/// input order. Pure logic.
///
/// Whole chunks are kept as the arrays they were decoded into and joined once at the
/// end (one copy per result, no optional per result); loops use indices, because this
/// code is generic and not specialized for the caller's types.
struct OrderedResults<Output> {
    let count: Int
    private var chunks: [(start: Int, values: [Output])] = []
    private var singles: [(index: Int, value: Output)] = []
    /// Results received so far.
    private(set) var received = 0
    /// Whether every chunk so far began where the one before it ended (the usual case):
    /// then the chunks are joined without sorting.
    private var arrivedInOrder = true

    init(count: Int) {
        self.count = count
    }

    var isComplete: Bool { received == count }
    var isEmpty: Bool { received == 0 }

    /// A chunk's outputs, for the items starting at `start`.
    mutating func add(chunkStartingAt start: Int, _ values: [Output]) {
        if let last = chunks.last, last.start + last.values.count != start { arrivedInOrder = false }
        chunks.append((start, values))
        received += values.count
    }

    /// One item's output (from a chunk in which other items failed).
    mutating func add(_ value: Output, at index: Int) {
        singles.append((index, value))
        received += 1
    }

    /// All outputs in input order; only when complete.
    func inOrder() -> [Output] {
        precondition(isComplete && singles.isEmpty, "results are complete only when every chunk succeeded")
        if chunks.count == 1 { return chunks[0].values }
        var result: [Output] = []
        result.reserveCapacity(count)
        if arrivedInOrder && chunks.first?.start == 0 {
            var i = 0
            while i < chunks.count {
                result.append(contentsOf: chunks[i].values)
                i += 1
            }
            return result
        }
        // Sort positions by start: plain integers, a sort that is not generic.
        var order: [(start: Int, position: Int)] = []
        order.reserveCapacity(chunks.count)
        var i = 0
        while i < chunks.count {
            order.append((chunks[i].start, i))
            i += 1
        }
        order.sort { $0.start < $1.start }
        i = 0
        while i < order.count {
            result.append(contentsOf: chunks[order[i].position].values)
            i += 1
        }
        return result
    }

    /// What has arrived, one element per input, `nil` where nothing has.
    func partial() -> [Output?] {
        var result = [Output?](repeating: nil, count: count)
        for chunk in chunks {
            var offset = 0
            while offset < chunk.values.count {
                result[chunk.start + offset] = chunk.values[offset]
                offset += 1
            }
        }
        for single in singles { result[single.index] = single.value }
        return result
    }
}
