/// Starts worker processes on this machine: the same executable, the same arguments,
/// the same environment plus the worker-mode variable, as direct children of this
/// process (posix_spawn, never fork without exec).
///
/// Descriptor 3 of the worker is its end of a close-on-exec Unix socket pair (the
/// channel); the worker watches it for the parent's end closing, which is also how it
/// learns that the parent died. Descriptor 4 is a shared page where the worker notes its
/// progress (the worker maps it and closes the descriptor; so does the parent once the
/// worker is spawned). Descriptor 2, its stderr, is a pipe the parent reads and forwards
/// to its own stderr, keeping the last lines for the error if the worker dies. Every
/// other descriptor is closed in the worker, and its stdin is `/dev/null`. So the parent
/// holds three descriptors per worker: the channel, the pipe and a pidfd.
struct LocalLauncher: Sendable {
    /// A started worker process, seen from the parent.
    struct SpawnedWorker {
        let pid: Int32
        /// A pidfd: readable once the process has exited.
        let processHandle: Int32
        /// The parent's end of the channel (non-blocking).
        let channel: Int32
        /// The read end of the worker's stderr pipe (non-blocking); -1 when the worker
        /// inherited this process's stderr (workers a worker host starts).
        let output: Int32
        /// The page where the worker notes its progress (mapped; its descriptor is closed).
        let progress: ProgressPage
    }

    /// Descriptors the parent holds for each local worker: its channel, its stderr pipe
    /// and its pidfd.
    static let descriptorsPerWorker = 3
    /// Descriptors a spawn holds for a moment beyond those it keeps (the worker's ends,
    /// the page, the copies `Platform.spawn` makes), with room for a few workers being
    /// replaced (recycled) at once.
    static let spawnHeadroom = 32

    let executable: String
    let arguments: [String]
    let baseEnvironment: [String]
    let maximumPayload: Int
    let timesItems: Bool

    /// The send buffer asked for on each end of a worker's channel: 4 MiB where the
    /// system allows it (`net.core.wmem_max`), else the system's most.
    static let channelSendBufferBytes: Int32 = 4 << 20

    init(maximumPayload: Int, timesItems: Bool) {
        executable = Platform.currentExecutablePath
        arguments = CommandLine.arguments
        baseEnvironment = Platform.environmentStrings().filter {
            !$0.hasPrefix(WorkerMode.environmentVariable + "=")
        }
        self.maximumPayload = maximumPayload
        self.timesItems = timesItems
    }

    /// Starts the worker for `slot`.
    ///
    /// - Parameter connected: a socket already connected (and authenticated) to the
    ///   pool's coordinator on another node, to be the worker's channel; the worker host
    ///   passes it. Without it, a new socket pair is the channel, and the parent keeps the
    ///   other end. The descriptor is the caller's to close afterwards.
    func spawn(slot: Int, connected: Int32? = nil) throws -> SpawnedWorker {
        do {
            return try spawnWorker(slot: slot, connected: connected)
        } catch let error as MultiprocessingError where Platform.isOutOfDescriptors(error) {
            throw Self.descriptorLimitError(workers: nil, cause: error)
        }
    }

    private func spawnWorker(slot: Int, connected: Int32?) throws -> SpawnedWorker {
        // Everything opened here is closed on the way out, but for what the worker keeps.
        var opened: [Int32] = []
        defer { for fd in opened { Platform.close(fd) } }
        let channelParent: Int32
        let channelChild: Int32
        if let connected {
            (channelParent, channelChild) = (-1, try Platform.duplicate(connected, atLeast: 3))
            opened.append(channelChild)
        } else {
            (channelParent, channelChild) = try Platform.socketPair()
            opened += [channelParent, channelChild]
            Platform.requestSendBuffer(channelParent, bytes: Self.channelSendBufferBytes)
            Platform.requestSendBuffer(channelChild, bytes: Self.channelSendBufferBytes)
            try Platform.setNonBlocking(channelParent)
        }
        // A worker host's workers keep its stderr, which Slurm collects.
        var output: (read: Int32, write: Int32) = (-1, -1)
        if connected == nil {
            output = try Platform.pipe()
            opened += [output.read, output.write]
            try Platform.setNonBlocking(output.read)
        }
        // A remote worker answers every chunk at once: when its node is lost, the first
        // chunk in flight must be the one it was running.
        let settings = WorkerMode.Settings(
            parentPID: Platform.processID, slot: slot, maximumPayload: maximumPayload, timesItems: timesItems,
            holdsShortResults: connected == nil)
        let progress = try ProgressPage()
        var descriptors = [
            (channelChild, WorkerMode.channelDescriptor), (progress.descriptor, WorkerMode.progressDescriptor),
        ]
        if output.write >= 0 { descriptors.append((output.write, 2)) }
        let pid = try Platform.spawn(
            executable: executable,
            arguments: arguments,
            environment: baseEnvironment + ["\(WorkerMode.environmentVariable)=\(settings.environmentValue)"],
            descriptors: descriptors,
            blockingUSR1: true
        )
        progress.releaseDescriptor()
        let handle: Int32
        do {
            handle = try Platform.openProcessHandle(pid)
        } catch {
            Platform.kill(pid, Platform.Signal.kill)
            Platform.reapBlocking(pid)  // no handle to watch it with: reap it here
            throw error
        }
        opened.removeAll { $0 == channelParent || $0 == output.read }
        return SpawnedWorker(
            pid: pid, processHandle: handle, channel: channelParent, output: output.read, progress: progress)
    }

    /// Checks, before a pool starts `workers` local workers, that the open-file limit
    /// leaves room for them, raising the soft limit toward the hard one when it does not.
    ///
    /// - Throws: ``MultiprocessingError/Code/spawnFailed`` when even the hard limit is too
    ///   low, saying how many descriptors are needed, the limit, and what to do.
    static func reserveDescriptors(workers: Int) throws {
        guard workers > 0 else { return }
        let needed = descriptorsNeeded(workers: workers)
        if Platform.raiseOpenFileLimit(to: needed) { return }
        throw descriptorLimitError(workers: workers, cause: nil)
    }

    private static func descriptorsNeeded(workers: Int) -> Int {
        Platform.openDescriptorCount() + workers * descriptorsPerWorker + spawnHeadroom
    }

    /// The error for a pool that does not fit under the open-file limit: `workers` when the
    /// pool's size is known (before it starts), else a spawn that ran out of descriptors.
    static func descriptorLimitError(workers: Int?, cause: MultiprocessingError?) -> MultiprocessingError {
        let (soft, hard) = Platform.openFileLimit()
        let limit = "the limit is \(soft) (ulimit -n; hard limit \(hard == Int.max ? "unlimited" : "\(hard)"))"
        let what: String
        let suggested: Int
        if let workers {
            let needed = descriptorsNeeded(workers: workers)
            what =
                "\(workers) local workers need about \(needed) open descriptors (\(descriptorsPerWorker) each, plus the \(Platform.openDescriptorCount()) this program has open and \(spawnHeadroom) to start workers with); \(limit)"
            suggested = needed
        } else {
            what = "this process ran out of open descriptors while starting a worker; \(limit)"
            suggested = soft * 2
        }
        let ask = max(1024, (suggested + 1023) / 1024 * 1024)
        return MultiprocessingError(
            .spawnFailed,
            "\(what). Raise it before starting the program (`ulimit -n \(ask)` in the shell or job script; only an administrator can raise the hard limit), or ask for fewer workers.",
            underlying: cause)
    }
}
