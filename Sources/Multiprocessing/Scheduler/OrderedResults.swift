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

    init(count: Int) {
        self.count = count
    }

    var isComplete: Bool { received == count }
    var isEmpty: Bool { received == 0 }

    /// A chunk's outputs, for the items starting at `start`.
    mutating func add(chunkStartingAt start: Int, _ values: [Output]) {
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
        let sorted = chunks.sorted { $0.start < $1.start }
        var result: [Output] = []
        result.reserveCapacity(count)
        var i = 0
        while i < sorted.count {
            result.append(contentsOf: sorted[i].values)
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
