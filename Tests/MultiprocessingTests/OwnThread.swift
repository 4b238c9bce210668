import Foundation

/// Waits, and signals a child at a moment the test chooses, on a thread of its own.
///
/// The tests share the Swift concurrency pool's threads (two on two CPUs). A test that
/// waits with `Task.sleep` before sending a signal is woken only when one of those threads
/// is free; while other tests run synchronous work on both, the wait can last seconds
/// longer than asked. The signal tests' program would then finish its map before the
/// signal, and the test would fail for a reason that is not the library's (seen in 3 of 4
/// runs of the whole suite). So the wait for the child's line, the pause and the signals
/// run on a `Thread`, and the test awaits only the outcome.
enum OwnThread {
    /// What `sendSignals` did: the line it waited for, and for each signal when it was sent (after
    /// the line was seen) and whether the process was still running then.
    struct Sent: Sendable {
        var line: String
        var signals: [String]
    }

    /// Waits until `file` holds a line that starts with `prefix`, then waits `delay` and
    /// sends `signals` to `process`, `gap` apart. Returns what it did, or `nil` (and sends
    /// nothing) when the process ended or `timeout` passed before the line appeared.
    static func sendSignals(
        _ signals: [Int32], to process: ChildProcess, whenLineStarts prefix: String, in file: URL,
        after delay: Duration, gap: Duration = .milliseconds(300), timeout: Duration = .seconds(30)
    ) async -> Sent? {
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
                guard let line else { return continuation.resume(returning: nil) }
                let seen = clock.now
                var sent: [String] = []
                Thread.sleep(forTimeInterval: seconds(delay))
                for (index, signal) in signals.enumerated() {
                    if index > 0 { Thread.sleep(forTimeInterval: seconds(gap)) }
                    let running = process.isRunning
                    kill(process.processIdentifier, signal)
                    sent.append("\(signal) at \(clock.now - seen) after the line was seen (running: \(running))")
                }
                continuation.resume(returning: Sent(line: line, signals: sent))
            }
            thread.name = "test-signal-sender"
            thread.start()
        }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let (whole, attoseconds) = duration.components
        return TimeInterval(whole) + TimeInterval(attoseconds) / 1e18
    }

    /// Checks `condition` every 5 ms on a thread of its own until it holds or `timeout`
    /// passes, and says how long that took: a measure of how soon something happened
    /// that a busy Swift concurrency pool cannot stretch.
    static func wait(
        timeout: Duration, until condition: @escaping @Sendable () -> Bool
    ) async -> (held: Bool, after: Duration) {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let clock = ContinuousClock()
                let start = clock.now
                var held = condition()
                while !held && clock.now - start < timeout {
                    usleep(5_000)
                    held = condition()
                }
                continuation.resume(returning: (held, clock.now - start))
            }
            thread.name = "test-wait"
            thread.start()
        }
    }
}
