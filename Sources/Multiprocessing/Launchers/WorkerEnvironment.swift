/// How a parent tells a spawned process that it is a worker: the contract between a
/// launcher and the worker it starts (the environment variable, the descriptors the worker
/// inherits, its settings, its special exit statuses). Launchers write it (`LocalLauncher`,
/// the `srun` step); the worker side (`Workers/WorkerMode.swift`) reads it in `bootstrap()`.
/// The variable is removed from the worker's environment as soon as `bootstrap()` reads
/// it, so programs the worker's function starts never see it.
enum WorkerMode {
    /// `v1:<parent pid>:<slot>:<maximum frame payload>:<flags>`; the channel is descriptor
    /// 3, the progress page descriptor 4.
    static let environmentVariable = "SWIFT_MULTIPROCESSING_WORKER"
    static let channelDescriptor: Int32 = 3
    static let progressDescriptor: Int32 = 4
    /// Exit status of a worker whose program never called `bootstrap()`.
    static let bootstrapMissingStatus: Int32 = 70
    /// Exit status of a worker whose initializer failed.
    static let initializerFailedStatus: Int32 = 71

    struct Settings: Equatable {
        var parentPID: Int32
        var slot: Int
        var maximumPayload: Int
        /// Note each item's start time in the progress page (items have a timeout).
        var timesItems: Bool
        /// Answer a run of short chunks with one write (see `HeldReplies`); local workers only.
        var holdsShortResults: Bool

        var environmentValue: String {
            "v1:\(parentPID):\(slot):\(maximumPayload):\((timesItems ? 1 : 0) | (holdsShortResults ? 2 : 0))"
        }

        init(
            parentPID: Int32, slot: Int, maximumPayload: Int, timesItems: Bool = false, holdsShortResults: Bool = false
        ) {
            self.parentPID = parentPID
            self.slot = slot
            self.maximumPayload = maximumPayload
            self.timesItems = timesItems
            self.holdsShortResults = holdsShortResults
        }

        init?(environmentValue: String) {
            let parts = environmentValue.split(separator: ":")
            guard parts.count == 5, parts[0] == "v1", let parent = Int32(parts[1]), let slot = Int(parts[2]),
                let maximum = Int(parts[3]), maximum > 0, let flags = Int(parts[4])
            else { return nil }
            self.init(
                parentPID: parent, slot: slot, maximumPayload: maximum, timesItems: flags & 1 != 0,
                holdsShortResults: flags & 2 != 0)
        }
    }
}
