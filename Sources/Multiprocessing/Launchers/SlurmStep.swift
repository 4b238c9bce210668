import Synchronization

#if os(Linux)
/// The `srun` step of a multi-node pool: one worker host per node, in the same executable
/// at the same path, so Slurm places, binds, accounts for and cleans up every process.
///
/// The pool's secret goes to every host through `srun`'s standard input (`--input=all`),
/// never a command line or the environment. `srun`'s standard error passes through a
/// thread that copies it to this program's standard error and keeps the last lines, so
/// that a step that cannot start is reported with Slurm's own message.
final class SlurmStep: Sendable {
    let pid: Int32
    /// A pidfd: readable once `srun` has exited.
    let processHandle: Int32
    let command: [String]
    private let errorTail = ErrorTail()

    /// Starts `srun` for `nodes` worker hosts that connect back to `settings`.
    /// - Throws: ``MultiprocessingError/Code/nodesUnavailable`` when `srun` is not on the
    ///   `PATH`; ``MultiprocessingError/Code/spawnFailed`` when it cannot be started.
    init(nodes: Int, cpusPerTask: Int?, host settings: WorkerHost.Settings, secret: ClusterSecret) throws {
        guard let srun = Self.findOnPath("srun") else {
            throw MultiprocessingError(
                .nodesUnavailable,
                "this is a job of several nodes, but srun is not on the PATH, so the pool cannot start its workers on the other nodes: add Slurm's bin folder to PATH, or set MP_NODES=1 to use this node only"
            )
        }
        let executable = Self.executablePath()
        var command = [
            srun, "--nodes=\(nodes)", "--ntasks=\(nodes)", "--ntasks-per-node=1", "--input=all",
            "--kill-on-bad-exit=0", "--job-name=\(Self.programName)-workers",
        ]
        if let cpusPerTask { command.append("--cpus-per-task=\(cpusPerTask)") }
        command.append(executable)
        command += CommandLine.arguments.dropFirst()
        self.command = command

        let (input, inputChild) = try Platform.socketPair()
        let (errors, errorsChild): (Int32, Int32)
        do {
            (errors, errorsChild) = try Platform.socketPair()
        } catch {
            Platform.close(input)
            Platform.close(inputChild)
            throw error
        }
        defer {
            Platform.close(inputChild)
            Platform.close(errorsChild)
        }
        let environment =
            Platform.environmentStrings().filter {
                !$0.hasPrefix(WorkerMode.environmentVariable + "=")
                    && !$0.hasPrefix(WorkerHost.environmentVariable + "=")
            } + ["\(WorkerHost.environmentVariable)=\(settings.environmentValue)"]
        let pid: Int32
        do {
            pid = try Platform.spawn(
                executable: srun, arguments: command, environment: environment,
                descriptors: [(inputChild, 0), (1, 1), (errorsChild, 2)])
        } catch {
            Platform.close(input)
            Platform.close(errors)
            throw error
        }
        self.pid = pid
        do {
            processHandle = try Platform.openProcessHandle(pid)
        } catch {
            Platform.kill(pid, Platform.Signal.kill)
            Platform.reapBlocking(pid)
            Platform.close(input)
            Platform.close(errors)
            throw error
        }
        // The secret, then end of file: srun hands the line to every host.
        let line = Array((secret.hex + "\n").utf8)
        line.withUnsafeBytes { _ = try? Platform.writeAll(input, $0) }
        Platform.close(input)
        startCopyingErrors(from: errors)
    }

    /// What srun wrote to standard error last (up to a few lines), for error messages.
    var lastErrorLines: String {
        let bytes = errorTail.bytes.withLock { $0 }
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(separator: "\n").suffix(4).map { $0.trimmingWhitespace }
        return lines.joined(separator: " / ")
    }

    private func startCopyingErrors(from fd: Int32) {
        let tail = errorTail
        try? OSThread.start(name: "mp-srun-stderr") { [tail] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { raw in
                    (try? Platform.read(fd, into: raw.baseAddress!, count: raw.count)) ?? 0
                }
                if n <= 0 { break }
                buffer.withUnsafeBytes { _ = try? Platform.writeAll(2, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                tail.bytes.withLock { kept in
                    kept.append(contentsOf: buffer[0..<n])
                    if kept.count > 4096 { kept.removeFirst(kept.count - 4096) }
                }
            }
            Platform.close(fd)
            tail.finished.store(true, ordering: .releasing)
        }
    }

    /// The last bytes srun wrote to standard error.
    private final class ErrorTail: Sendable {
        let bytes = Mutex<[UInt8]>([])
        /// srun's standard error reached end of file.
        let finished = Atomic<Bool>(false)
    }

    /// Waits up to `milliseconds` for srun's standard error to end, so that an error
    /// message quotes all of what srun said before it exited.
    func waitForErrorOutput(milliseconds: Int) {
        for _ in 0..<max(milliseconds / 10, 1) where !errorTail.finished.load(ordering: .acquiring) {
            Platform.pause(microseconds: 10_000)
        }
    }

    static var programName: String {
        String(CommandLine.arguments.first?.split(separator: "/").last ?? "program")
    }

    /// The path of this executable (it must be the same on every node).
    static func executablePath() -> String {
        Platform.resolvedExecutablePath() ?? CommandLine.arguments.first ?? "/proc/self/exe"
    }

    static func findOnPath(_ name: String) -> String? { Platform.findOnPath(name) }
}
#endif
