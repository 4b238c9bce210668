import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one door to the operating system. Every system call goes through ``Platform/call(_:_:)``,
/// which retries `EINTR` and turns `errno` into a ``SystemCallError`` wrapped in a
/// ``MultiprocessingError`` with code ``MultiprocessingError/Code/systemCallFailed``.
/// Platform-specific parts live in `+Linux` / `+Darwin` / `+Unix` files beside this one.
enum Platform {
    /// Runs `body` (a C call that returns -1 and sets errno on failure), retrying on EINTR.
    @inline(__always)
    @discardableResult
    static func call<T: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = mp_errno()
            if code == EINTR { continue }
            throw systemError(name(), code)
        }
    }

    /// Like ``call(_:_:)`` but returns `nil` instead of throwing when errno is EAGAIN/EWOULDBLOCK.
    @inline(__always)
    static func callNonBlocking<T: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws -> T? {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = mp_errno()
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw systemError(name(), code)
        }
    }

    /// The library error for a failed system call.
    static func systemError(_ call: String, _ code: Int32) -> MultiprocessingError {
        MultiprocessingError(
            .systemCallFailed,
            "the system call \(call) failed: \(errorString(code))",
            underlying: SystemCallError(call: call, errno: code)
        )
    }

    /// `strerror` for an errno value.
    static func errorString(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }

    /// This process's id.
    static var processID: Int32 { getpid() }

    /// The parent process's id.
    static var parentProcessID: Int32 { getppid() }

    /// This machine's short host name, read once per process (``shortHostName()``).
    static let hostName = shortHostName()

    /// The short host name (up to the first dot).
    static func shortHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(name.split(separator: ".", maxSplits: 1).first ?? Substring(name))
    }

    /// Reads an environment variable.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Removes an environment variable from this process's environment (a worker removes
    /// the variable that made it one, so that programs it starts are not workers).
    static func removeEnvironment(_ name: String) {
        _ = unsetenv(name)
    }

    /// Whether standard error is a terminal (progress lines redraw in place only there).
    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    /// Makes stdout line-buffered, so that a worker's prints reach a Slurm output file whole.
    static func lineBufferStandardOutput() {
        mp_stdout_line_buffered()
    }

    /// Flushes C stdio's buffers when stdout holds unwritten bytes (one load when it does not).
    static func flushStandardOutputIfPending() {
        if mp_stdout_has_pending() != 0 { mp_flush_stdio() }
    }

    /// How many bytes of stack the calling thread has left below the caller's frame
    /// (`Int.max` when its bounds are unknown): a thread-local load after the first call.
    @usableFromInline
    @inline(__always)
    static func stackRemaining() -> Int {
        Int(clamping: mp_stack_remaining())
    }

    /// The whole environment as `NAME=value` strings.
    static func environmentStrings() -> [String] {
        var result: [String] = []
        #if canImport(Glibc)
        var pointer = environ
        #else
        var pointer = _NSGetEnviron().pointee!
        #endif
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }

    /// Writes a whole message to standard error with one `write` (no stdio buffering).
    static func writeToStandardError(_ text: String) {
        var message = text
        message.withUTF8 { utf8 in
            var offset = 0
            while offset < utf8.count {
                let n = write(2, utf8.baseAddress! + offset, utf8.count - offset)
                if n < 0 {
                    if mp_errno() == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    /// Monotonic time in nanoseconds.
    @inline(__always)
    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Exits immediately without running atexit handlers or flushing stdio.
    static func exitImmediately(_ status: Int32) -> Never {
        _exit(status)
    }

    /// Flushes every C output stream, then ends the process without running exit handlers or
    /// static destructors. Workers and worker hosts use it (and a program that requeued its
    /// Slurm job, which must not run the rest of its `main`): they ran the program's
    /// `main` only up to `bootstrap()`, so its exit work (an `atexit` handler that removes
    /// a temporary file, say) belongs to the parent and must not run once per worker.
    /// A job array's task that ends after its share uses it too: the rest of the program,
    /// its exit work included, runs in the task that reduces.
    /// CPython's workers end with `os._exit` for the same reason.
    static func exitFlushing(_ status: Int32) -> Never {
        fflush(nil)  // every output stream the worker's code opened, not only stdout and stderr
        _exit(status)
    }
}

/// A failed system call: its name and the `errno` it set (the ``MultiprocessingError/underlying``
/// cause of ``MultiprocessingError/Code/systemCallFailed``). It lives here, with the calls
/// that make it, because its description reads the system's text for the errno.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The name of the call, for example `"posix_spawn"`.
    public let call: String
    /// The `errno` value.
    public let errno: Int32

    /// Creates a system call error.
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// `<call> failed: <strerror> (errno <n>)`.
    public var description: String { "\(call) failed: \(Platform.errorString(errno)) (errno \(errno))" }
}
