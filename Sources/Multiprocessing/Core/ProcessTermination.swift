import CMultiprocessingShim

/// How a process ended: it exited with a status, a signal killed it, or, for a worker on
/// another node, it was lost with its node.
///
/// A struct rather than an enum, so that a new way of ending can be added without
/// breaking a `switch` in your code. Read it with ``exitStatus``, ``signal`` and
/// ``lostNode``, or compare it with `==` (or in a `case`) against ``exited(_:)``,
/// ``signaled(_:)`` and ``lost(node:)``:
///
/// ```swift
/// if error.termination == .signaled(9) { ... }
/// if let status = error.termination?.exitStatus { ... }
/// ```
public struct ProcessTermination: Sendable, Hashable, CustomStringConvertible {
    /// The ways a process can end today; internal, so that more can be added.
    enum Kind: Sendable, Hashable {
        case exited(Int32)
        case signaled(Int32)
        case lost(node: String)
    }

    /// How it ended.
    let kind: Kind

    init(_ kind: Kind) { self.kind = kind }

    /// It called `exit` (or returned from `main`) with `status`.
    public static func exited(_ status: Int32) -> ProcessTermination { .init(.exited(status)) }

    /// The signal numbered `signal` killed it.
    public static func signaled(_ signal: Int32) -> ProcessTermination { .init(.signaled(signal)) }

    /// It ran on another node, and the connection to that node's worker host ended (the
    /// node failed, or its worker host was killed): how the process itself ended is unknown.
    public static func lost(node: String) -> ProcessTermination { .init(.lost(node: node)) }

    /// The status it exited with, or `nil` when it did not exit by itself.
    public var exitStatus: Int32? {
        if case .exited(let status) = kind { return status }
        return nil
    }

    /// The signal that killed it, or `nil` when no signal did.
    public var signal: Int32? {
        if case .signaled(let signal) = kind { return signal }
        return nil
    }

    /// The node it was lost with, or `nil` when it was not lost with a node.
    public var lostNode: String? {
        if case .lost(let node) = kind { return node }
        return nil
    }

    /// The termination in words: `exited with status N`, `was killed by signal N (NAME)`
    /// (with the likely cause for SIGKILL and runtime traps), or `was lost with node X (...)`.
    public var description: String {
        switch kind {
        case .exited(let status):
            return "exited with status \(status)"
        case .signaled(let signal):
            var text = "was killed by signal \(signal) (\(Self.signalName(signal)))"
            if Self.abbreviation(signal) == "SIGKILL" {
                text +=
                    " — often the kernel's out-of-memory killer: check the job's memory request (--mem / --mem-per-cpu)"
            }
            return text
        case .lost(let node):
            return
                "was lost with node \(node) (the connection to its worker host ended: the node failed, or the worker host was killed)"
        }
    }

    /// The conventional name of a signal ("SIGKILL"), or "signal N" for one without a name here.
    static func abbreviation(_ signal: Int32) -> String {
        mp_signal_abbreviation(signal).map { String(cString: $0) } ?? "signal \(signal)"
    }

    /// A signal's name and, for those a crash raises, what usually raises it.
    static func signalName(_ signal: Int32) -> String {
        let name = abbreviation(signal)
        let trap = "a Swift runtime trap such as fatalError, a failed precondition or an out-of-range index"
        switch name {
        case "SIGILL": return "SIGILL: illegal instruction — \(trap)"
        case "SIGTRAP": return "SIGTRAP: \(trap)"
        case "SIGABRT": return "SIGABRT: abort()"
        case "SIGBUS": return "SIGBUS: bus error"
        case "SIGFPE": return "SIGFPE: arithmetic error"
        case "SIGSEGV": return "SIGSEGV: segmentation fault"
        default: return name
        }
    }
}
