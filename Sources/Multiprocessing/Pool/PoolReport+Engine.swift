extension PoolReport {
    /// Where the workers run: with ``ProcessPool/Engine/threads``, they are threads of this
    /// process, so ``parentCPU`` includes ``workersCPU``.
    public var engine: ProcessPool.Engine { onThreads ? .threads : .processes }
}
