import Multiprocessing

extension Fixture {
    /// Runs `scenario` when it is one of this file's; returns whether it was.
    static func runCodingScenario(_ scenario: String, _ args: [Int]) async throws -> Bool {
        switch scenario {
        default: return false
        }
    }
}
