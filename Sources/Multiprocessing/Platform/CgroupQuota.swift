/// Reads the CPU quota of this process's cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
/// `cpu.cfs_period_us`), walking up the hierarchy to the tightest limit. Takes the
/// cgroup filesystem's root and the text of `/proc/self/cgroup` so tests can give a
/// fake tree.
enum CgroupQuota {
    /// The quota in CPUs (e.g. 1.5), or `nil` when there is none or it cannot be read.
    static func cpus(
        root: String = "/sys/fs/cgroup", selfCgroup: String? = nil,
        read: (String) -> String? = Platform.readSmallTextFile
    ) -> Double? {
        guard let membership = selfCgroup ?? read("/proc/self/cgroup") else { return nil }
        var best: Double?
        func consider(_ value: Double?) {
            guard let value, value > 0 else { return }
            best = min(best ?? value, value)
        }
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",")
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                for directory in ancestors(of: path) {
                    consider(parseV2(read(join(root, directory, "cpu.max"))))
                }
            } else if controllers.contains("cpu") {
                let mount = join(root, fields[1].isEmpty ? "cpu" : String(fields[1]))
                for directory in ancestors(of: path) {
                    let quota = read(join(mount, directory, "cpu.cfs_quota_us"))
                    let period = read(join(mount, directory, "cpu.cfs_period_us"))
                    consider(parseV1(quota: quota, period: period))
                }
                // Some systems mount v1 controllers jointly as "cpu,cpuacct" and link "cpu".
            }
        }
        return best
    }

    /// `cpu.max`: "max 100000" (no limit) or "<quota> <period>".
    static func parseV2(_ text: String?) -> Double? {
        guard let parts = text?.split(whereSeparator: { $0 == " " || $0 == "\n" }), parts.count >= 2,
            parts[0] != "max", let quota = Double(parts[0]), let period = Double(parts[1]), period > 0
        else { return nil }
        return quota / period
    }

    /// v1: quota -1 means no limit.
    static func parseV1(quota: String?, period: String?) -> Double? {
        guard let q = quota.flatMap({ Double($0.trimmingWhitespace) }), q > 0,
            let p = period.flatMap({ Double($0.trimmingWhitespace) }), p > 0
        else { return nil }
        return q / p
    }

    private static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var components = path.split(separator: "/").map(String.init)
        while true {
            result.append("/" + components.joined(separator: "/"))
            if components.isEmpty { break }
            components.removeLast()
        }
        return result
    }

    private static func join(_ parts: String...) -> String {
        var path = ""
        for part in parts where !part.isEmpty {
            if path.hasSuffix("/") && part.hasPrefix("/") {
                path += part.dropFirst()
            } else if !path.isEmpty && !path.hasSuffix("/") && !part.hasPrefix("/") {
                path += "/" + part
            } else {
                path += part
            }
        }
        return path
    }
}

extension StringProtocol {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
