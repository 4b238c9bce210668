import Foundation
import Testing

@testable import Multiprocessing

/// Runs the `mp-fixture` executable (built next to the test bundle) in a child process,
/// with output captured to files and a deadline: a scenario that hangs fails the test
/// with what it was waiting for, instead of hanging the suite.
struct FixtureProcess {
    struct Outcome {
        var status: Int32
        var signaled: Bool
        var stdout: String
        var stderr: String
        var lines: [String] { stdout.split(separator: "\n").map(String.init) }

        /// The first line that starts with `prefix`, or "" (so a missing line fails the check that uses it).
        func line(_ prefix: String) -> String {
            lines.first { $0.hasPrefix(prefix) } ?? ""
        }

        /// Everything the process printed, for the message of a failed expectation: a test
        /// that fails then says what the program saw.
        var transcript: String {
            "status \(status)\(signaled ? " (signal)" : "")\nstdout:\n\(stdout)stderr:\n\(stderr)"
        }

        /// The value of the first `key=value` word on a line that starts with `prefix` (words
        /// are split at spaces, so a value ends at the next space), or nil when none was printed.
        /// The fixture prints what it saw this way; the tests judge it.
        func value(_ key: String, on prefix: String = "") -> String? {
            for line in lines where line.hasPrefix(prefix) {
                for word in line.split(separator: " ") where word.hasPrefix(key + "=") {
                    return String(word.dropFirst(key.count + 1))
                }
            }
            return nil
        }

        /// `value(key, on: prefix)` as an integer (nil when missing or not a number).
        func int(_ key: String, on prefix: String = "") -> Int? { value(key, on: prefix).flatMap { Int($0) } }

        /// `value(key, on: prefix)` as a number of seconds (nil when missing or not a number).
        func seconds(_ key: String, on prefix: String = "") -> Double? {
            value(key, on: prefix).flatMap { Double($0) }
        }

        /// A list the fixture printed as `key=a,b,c` (empty: `key=`), or nil when not printed.
        func list(_ key: String, on prefix: String = "") -> [String]? {
            value(key, on: prefix).map {
                $0.isEmpty ? [] : $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            }
        }

        /// A list of integers printed as `key=1,-,3` (`-`: no value at that place), or nil when not printed.
        func ints(_ key: String, on prefix: String = "") -> [Int?]? { list(key, on: prefix)?.map { Int($0) } }
    }

    static var buildDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().resolvingSymlinksInPath()
    }

    static var executable: String {
        let candidates = [
            buildDirectory.appendingPathComponent("mp-fixture").path,
            buildDirectory.deletingLastPathComponent().appendingPathComponent("mp-fixture").path,
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
                .appendingPathComponent("mp-fixture").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Starts the fixture; `launcher` is put in front (e.g. `["/usr/bin/taskset", "-c", "0"]`).
    static func start(
        _ arguments: [String], environment: [String: String] = [:], removing: [String] = [], launcher: [String] = []
    ) throws -> (ChildProcess, URL, URL) {
        try startProcess(launcher + [executable] + arguments, environment: environment, removing: removing)
    }

    /// Runs the fixture to completion, failing the test if it takes longer than `timeout`.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], removing: [String] = [], launcher: [String] = [],
        timeout: Duration = .seconds(60), waitingFor what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Outcome {
        try await runProcess(
            launcher + [executable] + arguments, environment: environment, removing: removing, timeout: timeout,
            waitingFor: what, sourceLocation: sourceLocation)
    }

    /// The environment variables that would change a pool's size: removed from every child
    /// the tests start, unless a test sets them.
    static let sizingVariables = ["MP_WORKERS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"]

    /// Starts `command` (an absolute path, then arguments) with output captured to files.
    static func startProcess(
        _ command: [String], environment: [String: String] = [:], removing: [String] = [],
        removingPrefix: String? = nil, directory: URL? = nil
    ) throws -> (ChildProcess, URL, URL) {
        var env = ProcessInfo.processInfo.environment
        for name in removing + sizingVariables { env[name] = nil }
        if let removingPrefix {
            for name in env.keys where name.hasPrefix(removingPrefix) { env[name] = nil }
        }
        for (name, value) in environment { env[name] = value }
        let outputs = FileManager.default.temporaryDirectory.appendingPathComponent("mp-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        let out = outputs.appendingPathComponent("stdout")
        let err = outputs.appendingPathComponent("stderr")
        let process = try ChildProcess(
            command, environment: env, directory: directory?.path, standardOutput: out.path, standardError: err.path)
        return (process, out, err)
    }

    /// Runs `command` to completion; past `timeout` it is killed and the test fails, saying
    /// what it was waiting for and what the process had printed.
    static func runProcess(
        _ command: [String], environment: [String: String] = [:], removing: [String] = [],
        removingPrefix: String? = nil, directory: URL? = nil, timeout: Duration = .seconds(60),
        waitingFor what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Outcome {
        let (process, out, err) = try startProcess(
            command, environment: environment, removing: removing, removingPrefix: removingPrefix, directory: directory)
        defer { try? FileManager.default.removeItem(at: out.deletingLastPathComponent()) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                kill(process.processIdentifier, SIGKILL)
                let partial = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
                Issue.record(
                    "timed out after \(timeout) waiting for \(what); output so far:\n\(partial)",
                    sourceLocation: sourceLocation)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return Outcome(
            status: process.terminationStatus,
            signaled: process.terminationReason == .uncaughtSignal,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

/// Whether a process is gone: no /proc entry, or a zombie (on these machines PID 1 does
/// not reap orphans, so a zombie whose parent has exited counts as gone).
func processIsGone(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.first == "Z" || fields.first == "X"
}

/// A child process started with the library's `Platform.spawn`, with the part of Foundation's `Process` the
/// tests use. Foundation's `Process.run()` on Linux (Swift 6.3.1) crashes now and then: it
/// over-reads the entries of `/proc/self/fd` (fixed upstream in swift-corelibs-foundation
/// after this toolchain), and this suite, which starts thousands of processes while
/// holding many descriptors, hit it twice in one day.
final class ChildProcess: @unchecked Sendable {
    enum TerminationReason { case exit, uncaughtSignal }

    let processIdentifier: Int32
    private let lock = NSLock()
    private var waitStatus: Int32?  // under lock

    /// Starts `command[0]` with `command` as its arguments, `environment` as its whole
    /// environment, stdin from /dev/null, and stdout/stderr appended to the given files
    /// (inherited when `nil`).
    init(
        _ command: [String], environment: [String: String], directory: String? = nil,
        standardOutput: String? = nil, standardError: String? = nil
    ) throws {
        // The library's own spawn: stdin from /dev/null, an empty signal mask and default
        // dispositions (the calling dispatch thread blocks signals, and a child would inherit
        // that), and no other descriptor of this process left open in the child.
        var descriptors: [(parent: Int32, child: Int32)] = []
        defer { for (fd, _) in descriptors { Platform.close(fd) } }
        if let standardOutput { descriptors.append((try Platform.openForAppending(standardOutput), 1)) }
        if let standardError { descriptors.append((try Platform.openForAppending(standardError), 2)) }
        // posix_spawn_file_actions_addchdir_np is not in Swift's Glibc module: a shell changes
        // directory, then becomes the command.
        let command = directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0] + command } ?? command
        let pid = try Platform.spawn(
            executable: command[0], arguments: command, environment: environment.map { "\($0.key)=\($0.value)" },
            descriptors: descriptors)
        processIdentifier = pid
    }

    /// Reaps the child if it has ended (`block`: waits for it).
    private func reap(block: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard waitStatus == nil else { return }
        var status: Int32 = 0
        while true {
            let reaped = waitpid(processIdentifier, &status, block ? 0 : WNOHANG)
            if reaped == processIdentifier {
                waitStatus = status
                return
            }
            if reaped == -1 && errno == EINTR { continue }
            return
        }
    }

    var isRunning: Bool {
        reap(block: false)
        return lock.withLock { waitStatus == nil }
    }

    func terminate() { kill(processIdentifier, SIGTERM) }

    /// Blocks the calling thread until the child has ended.
    func waitUntilExit() { reap(block: true) }

    /// The exit status, or the signal that ended it (as Foundation's `Process` reports).
    var terminationStatus: Int32 {
        let status = lock.withLock { waitStatus } ?? 0
        return status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    var terminationReason: TerminationReason {
        let status = lock.withLock { waitStatus } ?? 0
        return status & 0x7f == 0 ? .exit : .uncaughtSignal
    }
}
