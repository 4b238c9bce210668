// The hash-files workload: SHA-256 of every file of a generated corpus (Benchmarks/run.py
// makes it: log-uniform sizes from 1 KiB to 4 MiB), one item per file, the item being the
// path. Pool creation and close are inside the timing.

import ArgumentParser
import Crypto
import Multiprocessing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A file that could not be read.
struct ReadFailed: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    var description: String { "cannot read \(path): errno \(errno)" }
}

/// The SHA-256 digest of the file at `path`, read in 1 MiB pieces.
func sha256(ofFile path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ReadFailed(path: path, errno: errno) }
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    defer { buffer.deallocate() }
    var hasher = SHA256()
    while true {
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0 {
            if errno == EINTR { continue }
            throw ReadFailed(path: path, errno: errno)
        }
        if n == 0 { break }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
    }
    return Array(hasher.finalize())
}

/// What the workers run: one file's digest.
struct HashFile: ParallelFunction {
    func callAsFunction(_ path: String) throws -> [UInt8] { try sha256(ofFile: path) }
}

/// The XOR of 32-byte digests (an order-free checksum), in hex.
struct DigestXOR {
    var bytes = [UInt8](repeating: 0, count: 32)

    mutating func add(_ digest: [UInt8]) {
        for i in 0..<min(32, digest.count) { bytes[i] ^= digest[i] }
    }

    mutating func add(_ other: DigestXOR) { add(other.bytes) }

    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }
}

/// The regular files of a folder, sorted by name, with their total size in bytes.
func corpusFiles(_ folder: String) throws -> (paths: [String], bytes: Int) {
    guard let dir = opendir(folder) else { throw ReadFailed(path: folder, errno: errno) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name.hasPrefix(".") { continue }
        names.append(name)
    }
    names.sort()
    var paths: [String] = []
    var total = 0
    for name in names {
        let path = folder + "/" + name
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
        paths.append(path)
        total += Int(info.st_size)
    }
    return (paths, total)
}

extension Bench {
    /// hash-files: process or threads (the pool's engines, `imapUnordered` with automatic
    /// chunks), taskgroup (the baseline: `workers` tasks that take files from a shared
    /// atomic index, no pool), or sequential (`--workers 0`).
    func hashFiles() async throws -> [String: Any] {
        guard let corpus else { throw ValidationError("hash-files needs --corpus FOLDER") }
        let (paths, bytes) = try corpusFiles(corpus)
        var checksum = DigestXOR()
        var cpu: [String: Any] = [:]
        let cpuStart = Self.processCPU()
        let start = ContinuousClock.now
        if workers == 0 {
            for path in paths { checksum.add(try sha256(ofFile: path)) }
        } else if engine == "taskgroup" {
            let next = Counter()
            checksum = try await withThrowingTaskGroup(of: DigestXOR.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var sum = DigestXOR()
                        while true {
                            let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                            if i >= paths.count { break }
                            sum.add(try sha256(ofFile: paths[i]))
                        }
                        return sum
                    }
                }
                var all = DigestXOR()
                for try await sum in group { all.add(sum) }
                return all
            }
        } else {
            let report = try await withProcessPool(workers: workers, options: poolOptions) { pool in
                Self.poolWorkers.withLock { $0 = pool.workerCount }
                for try await item in pool.imapUnordered(HashFile(), paths) { checksum.add(try item.get()) }
                return await pool.report()
            }
            cpu = Self.cpuFields(report)
        }
        let seconds = seconds(since: start)
        if cpu.isEmpty {
            // No pool: the whole process, all of it the work's (parent share not defined).
            let used = Self.processCPU()
            cpu = ["parent_user_s": used.user - cpuStart.user, "parent_sys_s": used.system - cpuStart.system]
        }
        var result = base(items: paths.count, seconds: seconds, checksum: 0).merging([
            "checksum": checksum.hex, "bytes": bytes, "gb_per_s": Double(bytes) / 1e9 / seconds,
        ]) { $1 }
        result.merge(cpu) { $1 }
        return result
    }

    /// This process's user and system CPU seconds (`getrusage(RUSAGE_SELF)`).
    static func processCPU() -> (user: Double, system: Double) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let seconds = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }

    /// The report's CPU figures, for the JSON line.
    static func cpuFields(_ report: PoolReport) -> [String: Any] {
        [
            "parent_user_s": report.parentCPU.userSeconds, "parent_sys_s": report.parentCPU.systemSeconds,
            "workers_user_s": report.workersCPU.userSeconds, "workers_sys_s": report.workersCPU.systemSeconds,
            "parent_share": report.parentShare,
        ]
    }
}
