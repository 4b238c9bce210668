/// A small page of memory shared between the parent and one worker, where the worker
/// notes what it is doing: which chunk, which phase, which item, since when.
///
/// Writing it costs a few plain stores per item (no system call). The parent reads it
/// when the worker dies, to fail exactly the item that was running and send the rest of
/// the chunk elsewhere, and, when items have a timeout, while the worker runs.
final class ProgressPage: @unchecked Sendable {
    /// What the worker is doing with the chunk in ``chunkID``.
    enum Phase: UInt64 {
        case idle = 0
        case decoding = 1
        case running = 2
        case encoding = 3
    }

    /// What the parent reads.
    struct Snapshot: Equatable {
        var chunkID: UInt64
        var phase: Phase
        /// The running item's offset within the chunk's inputs.
        var offset: Int
        /// When the running item started (monotonic nanoseconds; 0 when not recorded).
        var startedNanos: UInt64
    }

    static let size = 4096
    /// The memfd behind the page, until ``releaseDescriptor()``: the mapping outlives it,
    /// so neither side keeps a descriptor per worker once the worker has its copy.
    private(set) var descriptor: Int32
    private let words: UnsafeMutablePointer<UInt64>

    /// Creates a page to hand to a new worker (parent side).
    init() throws {
        let fd = try Platform.createSharedMemory(name: "mp-progress", size: Self.size)
        do {
            words = try Self.map(fd)
        } catch {
            Platform.close(fd)
            throw error
        }
        descriptor = fd
    }

    /// Maps the page a parent handed over (worker side), and closes its descriptor.
    init(inheritedDescriptor fd: Int32) throws {
        words = try Self.map(fd)
        descriptor = -1
        Platform.close(fd)
    }

    /// Closes the page's descriptor (the mapping stays): once the worker has been spawned
    /// with its copy, the parent needs only the mapping.
    func releaseDescriptor() {
        guard descriptor >= 0 else { return }
        Platform.close(descriptor)
        descriptor = -1
    }

    private static func map(_ fd: Int32) throws -> UnsafeMutablePointer<UInt64> {
        let raw = try Platform.mapShared(fd, size: size)
        let words = raw.bindMemory(to: UInt64.self, capacity: 4)
        words.initialize(repeating: 0, count: 4)
        return words
    }

    deinit {
        Platform.unmap(UnsafeMutableRawPointer(words), size: Self.size)
        releaseDescriptor()
    }

    // Worker side: plain stores; the parent reads them after the worker is gone, or
    // tolerates a stale value while it runs.

    /// Notes that the worker starts a chunk: it decodes its inputs, from `offset` on.
    @inline(__always)
    func begin(chunkID: UInt64, offset: Int, timed: Bool) {
        words[1] = Phase.idle.rawValue
        words[0] = chunkID
        note(.decoding, offset: offset, timed: timed)
    }

    /// Notes that the worker starts `phase` for the item at `offset` (with its start time
    /// when items are timed): decoding its input, running it, or encoding its result.
    @inline(__always)
    func note(_ phase: Phase, offset: Int, timed: Bool) {
        if timed { words[3] = Platform.monotonicNanos() }
        words[2] = UInt64(offset)
        words[1] = phase.rawValue
    }

    @inline(__always)
    func set(_ phase: Phase) {
        words[1] = phase.rawValue
    }

    /// The words the inlined chunk loop writes for each item (`_ChunkContext.noteItem`):
    /// word 3, the start time, then word 2, the offset. Valid while the page lives.
    var wordsForItems: UnsafeMutablePointer<UInt64> { words }

    /// Parent side: what the worker last noted. Reads the item twice so that an offset
    /// and a start time from different items are never paired.
    func snapshot() -> Snapshot {
        while true {
            let offset = words[2]
            let started = words[3]
            let chunkID = words[0]
            let phase = Phase(rawValue: words[1]) ?? .idle
            if words[2] == offset {
                return Snapshot(chunkID: chunkID, phase: phase, offset: Int(offset), startedNanos: started)
            }
        }
    }
}
