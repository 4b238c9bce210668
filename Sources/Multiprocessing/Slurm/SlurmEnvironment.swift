/// Reads the Slurm variables that size a pool, and checks them: a value that is not a
/// positive whole number is reported, not trusted.
enum SlurmEnvironment {
    /// Names of the variables the CPU rules read (and the override `MP_WORKERS`).
    static let cpusPerTask = "SLURM_CPUS_PER_TASK"
    static let cpusOnNode = "SLURM_CPUS_ON_NODE"
    static let workersOverride = "MP_WORKERS"

    /// A positive count from the environment, or the warning that explains why not.
    enum Reading: Equatable {
        case absent
        case value(Int)
        case invalid(WorkerCount.IgnoredValue)
    }

    static func positiveCount(_ name: String, in environment: [String: String]) -> Reading {
        guard let raw = environment[name] else { return .absent }
        let text = raw.trimmingWhitespace
        // Slurm writes some counts as "4(x2)"; CPU counts are plain numbers.
        guard let value = Int(text), value > 0 else {
            let why =
                Int(text) != nil ? "it is not positive" : (text.isEmpty ? "it is empty" : "it is not a whole number")
            return .invalid(
                WorkerCount.IgnoredValue(
                    variable: name, value: raw, reason: why,
                    message: "\(name)='\(raw)' is ignored: \(why); set it to a positive whole number or unset it"))
        }
        return .value(value)
    }
}
