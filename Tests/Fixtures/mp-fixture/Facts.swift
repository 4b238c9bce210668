// How scenarios print what they saw: `key=value` words on lines the tests read with
// FixtureProcess.Outcome.value(_:on:) and its siblings. A scenario reports counts, codes,
// values and timings; the test, not the fixture, judges them.

#if canImport(Glibc)
import Glibc
#endif

/// `values` as one word: comma-separated, nothing for an empty list.
func list<T>(_ values: [T]) -> String { values.map { "\($0)" }.joined(separator: ",") }

/// `values` as one word, `-` where there is no value (an item whose result never came).
func optionalList<T>(_ values: [T?]) -> String { values.map { $0.map { "\($0)" } ?? "-" }.joined(separator: ",") }

/// Seconds since `start` (from `now()`), to the millisecond.
func elapsed(since start: Double) -> String {
    let elapsed = now() - start
    return "\(Double(Int(elapsed * 1000)) / 1000)"
}

/// The signal state of this process and of each of its threads, as one line:
/// `signals at=<when> pending=<SigPnd> shared=<ShdPnd> blocked=<SigBlk> ignored=<SigIgn>
/// caught=<SigCgt> threads=<name>:<SigBlk>,...` (hex masks from /proc: bit N-1 is signal N,
/// so SIGINT is 0x2, SIGTERM 0x4000). A test that sends a signal shows it when the program
/// did not react.
func signalState(at when: String) -> String {
    func fields(_ path: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in (readFile(path) ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = parts[1].trimmed(of: " \t") }
        }
        return result
    }
    let own = fields("/proc/self/status")
    var threads: [String] = []
    if let dir = opendir("/proc/self/task") {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard Int(name) != nil else { continue }
            let comm = (readFile("/proc/self/task/\(name)/comm") ?? "?").trimmed(of: "\n")
                .replacingSpaces()
            threads.append("\(comm):\(fields("/proc/self/task/\(name)/status")["SigBlk"] ?? "?")")
        }
        closedir(dir)
    }
    let keys = [
        ("pending", "SigPnd"), ("shared", "ShdPnd"), ("blocked", "SigBlk"), ("ignored", "SigIgn"), ("caught", "SigCgt"),
    ]
    let masks = keys.map { "\($0.0)=\(own[$0.1] ?? "?")" }.joined(separator: " ")
    return "signals at=\(when) \(masks) threads=\(list(threads.sorted()))"
}

extension StringProtocol {
    fileprivate func trimmed(of set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }

    fileprivate func replacingSpaces() -> String { String(map { $0 == " " || $0 == "," ? "_" : $0 }) }
}

/// A 64-bit FNV-1a digest of `bytes`, in hex: what a scenario prints instead of megabytes
/// it sent and got back, so that the test compares the two.
func digest<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    return String(hash, radix: 16)
}
