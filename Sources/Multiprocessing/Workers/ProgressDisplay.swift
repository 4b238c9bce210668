/// How a pool shows the progress of its calls on stderr.
public enum ProgressMode: String, Sendable, Hashable {
    /// No progress output (the default).
    case off
    /// A live one-line bar, redrawn five times a second (for a terminal).
    case bar
    /// Plain timestamped lines: one when a call starts, one every 10 s, one at the end.
    /// No control characters, so a Slurm output file reads well with `tail -f`.
    case lines
    /// `bar` when stderr is a terminal, `lines` otherwise.
    case automatic

    /// The mode in effect: `MP_PROGRESS=off|bar|lines` overrides the program's choice
    /// (an invalid value is named in a warning and ignored); `automatic` becomes `bar` or
    /// `lines` by whether stderr is a terminal.
    static func resolve(_ chosen: ProgressMode, environment: String?, stderrIsTerminal: Bool) -> (ProgressMode, String?)
    {
        var mode = chosen
        var warning: String?
        if let environment {
            if let value = ProgressMode(rawValue: environment.trimmingWhitespace), value != .automatic {
                mode = value
            } else {
                warning = "MP_PROGRESS='\(environment)' is ignored: use off, bar or lines"
            }
        }
        if mode == .automatic { mode = stderrIsTerminal ? .bar : .lines }
        return (mode, warning)
    }
}

/// What progress output shows for one call. Pure data.
struct ProgressSnapshot: Equatable {
    var name: String
    var done: Int
    var total: Int?
    var failed: Int
    var retried: Int
    var elapsedNanos: UInt64

    var itemsPerSecond: Double {
        elapsedNanos == 0 ? 0 : Double(done) / (Double(elapsedNanos) / 1e9)
    }

    /// Seconds left at the current rate, when the total is known and the rate is not zero.
    var etaSeconds: Double? {
        guard let total, done > 0, itemsPerSecond > 0 else { return nil }
        return Double(total - done) / itemsPerSecond
    }

    /// `1234/10000 (12%)`, or `1234` when the total is unknown.
    var count: String {
        guard let total, total > 0 else { return "\(done)" }
        return "\(done)/\(total) (\(done * 100 / total)%)"
    }

    /// A plain line for a log or a Slurm output file.
    func line(event: String, workers: Int? = nil) -> String {
        if event == "started" {
            let what = total.map { "\($0) items" } ?? "a lazy input"
            return "\(name) started: \(what)\(workers.map { " on \($0) workers" } ?? "")"
        }
        var text =
            "\(name) \(event): \(count), \(Self.rate(itemsPerSecond)) items/s, elapsed \(Self.duration(Double(elapsedNanos) / 1e9))"
        if event == "progress", let eta = etaSeconds { text += ", ETA \(Self.duration(eta))" }
        text += ", \(failed) failed, \(retried) retried"
        return text
    }

    /// The terminal bar: `[#####-----] 1234/10000 (12%) 523 items/s 0:02 ETA 0:17 0 failed 0 retried`.
    func bar(width: Int = 24) -> String {
        var text = ""
        if let total, total > 0 {
            let filled = min(width, done * width / total)
            text += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
        }
        text += "\(name) \(count) \(Self.rate(itemsPerSecond)) items/s \(Self.clock(Double(elapsedNanos) / 1e9))"
        if let eta = etaSeconds { text += " ETA \(Self.clock(eta))" }
        text += " \(failed) failed \(retried) retried"
        return text
    }

    static func rate(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        return String((value * 10).rounded() / 10)
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? "\((seconds * 10).rounded() / 10) s" : clock(seconds)
    }

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return h > 0 ? "\(h):\(two(m)):\(two(s))" : "\(m):\(two(s))"
    }

    /// `2026-11-25T13:56:21Z`, UTC, for the start of a line.
    static func timestamp() -> String {
        let now = Platform.utcNow()
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return
            "\(now.year)-\(two(now.month))-\(two(now.day))T\(two(now.hour)):\(two(now.minute)):\(two(now.second))Z"
    }
}

/// One call's progress, handed to ``ProcessPool/Options/onProgress`` for programs that
/// draw their own display.
public struct CallProgress: Sendable, Hashable {
    /// The kind of call: `map`, `imap`, `imapUnordered` or `mapReduce`.
    public let call: String
    /// Items answered so far (failed ones included).
    public let done: Int
    /// All the call's items, when known (a lazy input's total is known at its end).
    public let total: Int?
    /// Items that failed so far.
    public let failed: Int
    /// Retries so far.
    public let retried: Int
    /// Seconds since the call started.
    public let elapsedSeconds: Double
    /// Whether the call is over (the last update of a call).
    public let finished: Bool

    init(_ snapshot: ProgressSnapshot, finished: Bool) {
        call = snapshot.name
        done = snapshot.done
        total = snapshot.total
        failed = snapshot.failed
        retried = snapshot.retried
        elapsedSeconds = Double(snapshot.elapsedNanos) / 1e9
        self.finished = finished
    }
}
