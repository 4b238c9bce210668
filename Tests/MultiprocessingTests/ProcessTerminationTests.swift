import Foundation
import Testing

@testable import Multiprocessing

/// `ProcessTermination` as programs written against the enum it was read it: comparisons
/// and `case` patterns without bindings still compile, the accessors replace bindings, and
/// the descriptions keep their words.
@Suite("Process termination")
struct ProcessTerminationTests {
    func kind(_ termination: ProcessTermination?) -> String {
        switch termination {
        case .exited(0)?: return "clean exit"
        case .signaled(9)?: return "SIGKILL"
        case nil: return "none"
        default: return "other"
        }
    }

    @Test("== and case patterns against the static members work as they did with the enum")
    func patterns() {
        #expect(kind(.exited(0)) == "clean exit")
        #expect(kind(.signaled(9)) == "SIGKILL")
        #expect(kind(.exited(1)) == "other")
        #expect(kind(.lost(node: "n1")) == "other")
        #expect(kind(nil) == "none")
        #expect(ProcessTermination.signaled(15) == .signaled(15))
        #expect(ProcessTermination.exited(15) != .signaled(15))
        #expect(Set([ProcessTermination.exited(1), .exited(1), .lost(node: "a")]).count == 2)
    }

    @Test("the accessors say how it ended, and nil for the other ways")
    func accessors() {
        let exited = ProcessTermination.exited(3)
        let killed = ProcessTermination.signaled(SIGSEGV)
        let lost = ProcessTermination.lost(node: "node7")
        #expect(exited.exitStatus == 3 && exited.signal == nil && exited.lostNode == nil)
        #expect(killed.signal == SIGSEGV && killed.exitStatus == nil && killed.lostNode == nil)
        #expect(lost.lostNode == "node7" && lost.exitStatus == nil && lost.signal == nil)
    }

    @Test("descriptions keep their words")
    func descriptions() {
        #expect(ProcessTermination.exited(3).description == "exited with status 3")
        #expect(
            ProcessTermination.signaled(SIGKILL).description
                == "was killed by signal \(SIGKILL) (SIGKILL) — often the kernel's out-of-memory killer: check the job's memory request (--mem / --mem-per-cpu)"
        )
        #expect(
            ProcessTermination.signaled(SIGSEGV).description
                == "was killed by signal \(SIGSEGV) (SIGSEGV: segmentation fault)")
        #expect(ProcessTermination.signaled(SIGTERM).description == "was killed by signal \(SIGTERM) (SIGTERM)")
        #expect(ProcessTermination.signaled(77).description == "was killed by signal 77 (signal 77)")
        #expect(
            ProcessTermination.lost(node: "n2").description
                == "was lost with node n2 (the connection to its worker host ended: the node failed, or the worker host was killed)"
        )
    }
}
