extension MultiprocessingError {
    /// The same error for one item of a range that failed together, with that item's index
    /// (an error already naming an item keeps it).
    func forItem(_ index: Int) -> MultiprocessingError {
        guard itemIndex == nil else { return self }
        return MultiprocessingError(
            copying: MultiprocessingError(
                code, message, itemIndex: index, worker: worker, remoteErrorType: remoteErrorType,
                remoteErrorMessage: remoteErrorMessage, termination: termination, interruptSignal: interruptSignal,
                underlying: underlying),
            partialResults: partialResultsStorage)
    }
}
