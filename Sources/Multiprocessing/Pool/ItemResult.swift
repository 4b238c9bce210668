/// One item's outcome in a stream: its index in the input, and its output or its failure.
///
/// Streams (``ProcessPool/imap(_:_:chunkSize:progress:)``, ``ProcessPool/imapUnordered(_:_:chunkSize:progress:)``)
/// yield a failed item as its failure and go on with the next items, unlike
/// ``ProcessPool/map(_:_:chunkSize:progress:)``, which throws at the first failure.
public struct ItemResult<Output: Sendable>: Sendable {
    /// The item's index (0-based) in the input.
    public let index: Int
    /// The output, or the failure: ``MultiprocessingError/Code/functionThrew`` when the
    /// function threw, ``MultiprocessingError/Code/workerDied`` when its worker died.
    public let result: Result<Output, MultiprocessingError>

    /// Creates an item result.
    public init(index: Int, result: Result<Output, MultiprocessingError>) {
        self.index = index
        self.result = result
    }

    /// The output.
    /// - Throws: the item's failure.
    public func get() throws(MultiprocessingError) -> Output {
        try result.get()
    }
}
