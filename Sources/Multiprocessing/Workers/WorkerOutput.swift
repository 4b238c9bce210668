#if os(Linux)
/// A local worker's stderr, seen from the parent: the read end of a pipe that the event
/// loop watches. What the worker writes is forwarded to this process's stderr unchanged,
/// a whole line at a time (so lines of different workers never mix), and the last few
/// lines are kept: when the worker dies, they say why ("Fatal error: ...", "failed to
/// allocate ..."), and the supervisor puts them in the error.
///
/// Nothing is dropped: while the parent is busy the pipe fills and the worker waits in
/// its write. Touched only by the event loop's owner, on the loop thread.
final class WorkerOutput {
    private var descriptor: Int32
    private var token: UInt64 = 0
    /// The start of a line whose end has not arrived yet.
    private var partial: [UInt8] = []
    /// The last non-empty lines written before any crash report (newest last).
    private var kept: [[UInt8]] = []
    /// The Swift runtime's crash report (a backtrace) has begun: its lines are forwarded,
    /// but the lines before it are the worker's last words.
    private var inCrashReport = false

    /// How many lines, and how many bytes of them, the error quotes: enough for a Swift
    /// runtime error (one line) with the lines printed just before it, short enough for a
    /// log line.
    static let keptLines = 4
    static let keptBytes = 1024
    /// A line longer than this is forwarded before its end arrives (it may then mix with
    /// another worker's lines): the parent holds at most this much per worker.
    static let longestHeldLine = 1 << 16
    /// Read at most this much per readiness event, so that one chatty worker does not
    /// hold up the loop (level-triggered: the rest is read in the next round).
    static let bytesPerEvent = 1 << 18

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Starts forwarding: the loop reads the pipe whenever it is readable.
    func watch(loop: EventLoop) throws {
        guard descriptor >= 0 else { return }
        token = try loop.register(
            descriptor, .readable,
            EventHandler { [weak self, unowned loop] _, _, _ in
                guard let self, !self.readAvailable(limit: Self.bytesPerEvent) else { return }
                self.close(loop: loop)  // every writer is gone
            })
    }

    /// The worker has exited: forwards what is left in the pipe (with a final line that
    /// lacked its newline) and closes it. Output of a process the worker started and left
    /// running, which still holds the pipe, is not waited for.
    func finish(loop: EventLoop) {
        guard descriptor >= 0 else { return }
        _ = readAvailable(limit: .max)
        close(loop: loop)
    }

    /// The worker's last lines on stderr before it died (or before the runtime's crash
    /// report), quoted and joined; nil when it wrote none.
    var lastWords: String? {
        guard !kept.isEmpty else { return nil }
        var budget = Self.keptBytes
        var quoted: [String] = []
        for line in kept.reversed() {
            guard budget > 0 else { break }
            let text = String(decoding: line.suffix(budget), as: UTF8.self)
            budget -= line.count
            quoted.append("\"\(text)\"")
        }
        return quoted.reversed().joined(separator: " / ")
    }

    private func close(loop: EventLoop) {
        guard descriptor >= 0 else { return }
        if !partial.isEmpty {
            partial.append(UInt8(ascii: "\n"))
            forward(partial[...])
            partial.removeAll()
        }
        loop.unregister(token, fd: descriptor)
        Platform.close(descriptor)
        descriptor = -1
    }

    /// Reads up to `limit` bytes and forwards the whole lines; returns false at end of file.
    private func readAvailable(limit: Int) -> Bool {
        var total = 0
        return withUnsafeTemporaryAllocation(byteCount: 1 << 16, alignment: 1) { buffer in
            while total < limit {
                let n: Int?
                do {
                    n = try Platform.readNonBlocking(descriptor, into: buffer.baseAddress!, count: buffer.count)
                } catch {
                    return false
                }
                guard let n else { return true }
                if n == 0 { return false }
                total += n
                received(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            return true
        }
    }

    /// What a read gave (internal for the tests).
    func received(_ bytes: UnsafeRawBufferPointer) {
        guard let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")) else {
            partial.append(contentsOf: bytes)
            if partial.count > Self.longestHeldLine {
                forward(partial[...])
                partial.removeAll()
            }
            return
        }
        partial.append(contentsOf: bytes[...lastNewline])
        forward(partial[...])
        partial.removeAll(keepingCapacity: partial.count <= Self.longestHeldLine)
        partial.append(contentsOf: bytes[(lastNewline + 1)...])
    }

    /// Writes whole lines to this process's stderr and keeps the last ones.
    private func forward(_ lines: ArraySlice<UInt8>) {
        lines.withUnsafeBytes { raw in try? Platform.writeAll(2, raw) }
        guard !inCrashReport else { return }
        var end = lines.endIndex
        if lines.last == UInt8(ascii: "\n") { end -= 1 }
        // The crash report starts after the worker's last words: keep what comes before it.
        // (Split, not scanned by hand: a read that ends in an empty line, "...\n\n", once
        // left a newline inside the last kept line.)
        var before: [ArraySlice<UInt8>] = []
        let text = lines[lines.startIndex..<end]
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if Self.startsCrashReport(line) {
                inCrashReport = true
                break
            }
            before.append(line)
        }
        // The last few non-empty lines, newest last.
        var newest: [[UInt8]] = []
        for line in before.reversed() where newest.count < Self.keptLines {
            if line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != 9 }) {
                newest.append(Array(line.suffix(Self.keptBytes)))
            }
        }
        kept = Array((kept + newest.reversed()).suffix(Self.keptLines))
    }

    /// Whether a line opens the Swift runtime's crash report (`*** Signal 4: Backtracing
    /// from ...`, or `💣 Program crashed: ...` in older runtimes).
    static func startsCrashReport(_ line: ArraySlice<UInt8>) -> Bool {
        let text = String(decoding: line.prefix(64), as: UTF8.self)
        return (text.hasPrefix("*** Signal ") && text.contains("Backtracing")) || text.hasPrefix("💣 Program crashed")
    }
}
#endif
