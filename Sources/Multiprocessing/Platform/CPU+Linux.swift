#if os(Linux)
import Glibc
import CMultiprocessingShim

extension Platform {
    /// CPUs in this process's affinity mask (what `nproc` prints), or `nil` if unknown.
    static func affinityCPUCount() -> Int? {
        let count = mp_affinity_cpu_count()
        return count > 0 ? Int(count) : nil
    }

    /// CPUs the machine has online (never used to size a pool: it ignores the allocation).
    static func onlineCPUCount() -> Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// The whole text of a small file (under 1 MiB), or `nil` when it cannot be read.
    static func readSmallTextFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress, raw.count) }
            if n < 0 {
                if mp_errno() == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
#endif
