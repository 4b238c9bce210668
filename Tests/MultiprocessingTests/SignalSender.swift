import Foundation

/// Signals a child at a moment the test chooses, from a thread of its own.
///
/// The tests share the Swift concurrency pool's threads (two on two CPUs). A test that
/// waits with `Task.sleep` before sending a signal is woken only when one of those threads
/// is free; while other tests run synchronous work on both, the wait can last seconds
/// longer than asked. The signal tests' program would then finish its map before the
/// signal, and the test would fail for a reason that is not the library's (seen in 3 of 4
/// runs of the whole suite). So the wait for the child's line, the pause and the signals
/// run on a `Thread`, and the test awaits only the outcome.
enum SignalSender {
    /// Waits until `file` holds a line that starts with `prefix`, then waits `delay` and
    /// sends `signals` to `process`, `gap` apart. Returns that line, or `nil` (and sends
    /// nothing) when the process ended or `timeout` passed before the line appeared.
    static func send(
        _ signals: [Int32], to process: ChildProcess, whenLineStarts prefix: String, in file: URL,
        after delay: Duration, gap: Duration = .milliseconds(300), timeout: Duration = .seconds(30)
    ) async -> String? {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let clock = ContinuousClock()
                let deadline = clock.now + timeout
                var line: String?
                while line == nil && process.isRunning && clock.now < deadline {
                    let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
                    line = text.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
                    if line == nil { usleep(10_000) }
                }
                if line != nil {
                    Thread.sleep(forTimeInterval: seconds(delay))
                    for (index, signal) in signals.enumerated() {
                        if index > 0 { Thread.sleep(forTimeInterval: seconds(gap)) }
                        kill(process.processIdentifier, signal)
                    }
                }
                continuation.resume(returning: line)
            }
            thread.name = "test-signal-sender"
            thread.start()
        }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let (whole, attoseconds) = duration.components
        return TimeInterval(whole) + TimeInterval(attoseconds) / 1e18
    }
}
