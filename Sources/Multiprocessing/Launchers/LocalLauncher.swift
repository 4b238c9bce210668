/// Starts worker processes on this machine: the same executable, the same arguments,
/// the same environment plus the worker-mode variable, as direct children of this
/// process (posix_spawn, never fork without exec).
///
/// Descriptor 3 of the worker is its end of a close-on-exec Unix socket pair (the
/// channel); descriptor 4 is its end of a second pair, the lifeline, whose other end
/// only this process holds and never writes: when this process dies, the worker's
/// lifeline reads end of file and the worker exits. Descriptor 5 is a shared page where
/// the worker notes its progress. Every other descriptor is closed in the worker, and its
/// stdin is `/dev/null`.
struct LocalLauncher: Sendable {
    /// A started worker process, seen from the parent.
    struct SpawnedWorker {
        let pid: Int32
        /// A pidfd: readable once the process has exited.
        let processHandle: Int32
        /// The parent's end of the channel (non-blocking).
        let channel: Int32
        /// The parent's end of the lifeline (never written; closing it tells the worker to go).
        let lifeline: Int32
        /// The page where the worker notes its progress.
        let progress: ProgressPage
    }

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
        let channelParent: Int32
        let channelChild: Int32
        if let connected {
            (channelParent, channelChild) = (-1, try Platform.duplicate(connected, atLeast: 3))
        } else {
            (channelParent, channelChild) = try Platform.socketPair()
            Platform.requestSendBuffer(channelParent, bytes: Self.channelSendBufferBytes)
            Platform.requestSendBuffer(channelChild, bytes: Self.channelSendBufferBytes)
        }
        let lifelineParent: Int32
        let lifelineChild: Int32
        do {
            (lifelineParent, lifelineChild) = try Platform.socketPair()
        } catch {
            Platform.close(channelParent)
            Platform.close(channelChild)
            throw error
        }
        defer {
            Platform.close(channelChild)
            Platform.close(lifelineChild)
        }
        // A remote worker answers every chunk at once: when its node is lost, the first
        // chunk in flight must be the one it was running.
        let settings = WorkerMode.Settings(
            parentPID: Platform.processID, slot: slot, maximumPayload: maximumPayload, timesItems: timesItems,
            holdsShortResults: connected == nil)
        let progress: ProgressPage
        do {
            progress = try ProgressPage()
        } catch {
            Platform.close(channelParent)
            Platform.close(lifelineParent)
            throw error
        }
        do {
            if channelParent >= 0 { try Platform.setNonBlocking(channelParent) }
            let pid = try Platform.spawn(
                executable: executable,
                arguments: arguments,
                environment: baseEnvironment + ["\(WorkerMode.environmentVariable)=\(settings.environmentValue)"],
                descriptors: [
                    (channelChild, WorkerMode.channelDescriptor), (lifelineChild, WorkerMode.lifelineDescriptor),
                    (progress.descriptor, WorkerMode.progressDescriptor),
                ]
            )
            let handle: Int32
            do {
                handle = try Platform.openProcessHandle(pid)
            } catch {
                Platform.kill(pid, 9)
                Platform.reapBlocking(pid)  // no handle to watch it with: reap it here
                throw error
            }
            return SpawnedWorker(
                pid: pid, processHandle: handle, channel: channelParent, lifeline: lifelineParent, progress: progress)
        } catch {
            if channelParent >= 0 { Platform.close(channelParent) }
            Platform.close(lifelineParent)
            throw error
        }
    }
}
