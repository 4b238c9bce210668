import Synchronization

/// An open journal file: what it held when it was opened (read once, never changing),
/// and the appending of new records.
///
/// One per path per process (``JournalRegistry``): every pool of the program that names
/// the same path shares it, and it stays open until the process exits. Records are
/// appended with `write` on the supervisors' loop threads as results arrive (see
/// `README.md`), and made durable by a thread of its own (`mp-journal`) that runs `fsync`
/// every ``syncIntervalNanos`` while there are new bytes, when a pool closes, and on
/// SIGINT/SIGTERM (``JournalRegistry/syncAllNow()``, from the signal thread).
final class Journal: @unchecked Sendable {
    let path: String
    private let fd: Int32
    /// What the file held when opened (a torn tail already dropped and cut off the file).
    let held: JournalContents
    let syncIntervalNanos: UInt64

    private struct State {
        var nextKey: UInt64
        var nextOrdinal: UInt64 = 0
        var failed = false
    }
    private let state: Mutex<State>
    private let dirty = Atomic<Bool>(false)
    private let syncLock = ConditionLock()
    private var syncWaiters: [CheckedContinuation<Void, Never>] = []  // under syncLock

    /// Opens (creating) and scans the file, drops a torn tail, takes the file's lock.
    /// Blocking: runs on a thread of its own (``JournalRegistry/journal(path:syncInterval:)``).
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when the file is not a
    ///   journal or another process is using it; ``MultiprocessingError/Code/systemCallFailed``.
    init(path: String, syncIntervalNanos: UInt64) throws {
        self.path = path
        self.syncIntervalNanos = syncIntervalNanos
        let fd = try Platform.openForAppending(path)
        do {
            guard try Platform.tryLockExclusively(fd) else {
                throw MultiprocessingError(
                    .invalidArgument,
                    "the journal \(path) is in use by another process (or by a pool of this one that named it by another path): give each running program its own journal"
                )
            }
            var bytes = try Platform.readWholeFile(fd)
            let scan = try bytes.withUnsafeBytes { raw throws(MultiprocessingError) in
                try JournalScan.scan(raw, path: path)
            }
            if scan.droppedBytes > 0 {
                try Platform.truncate(fd, to: scan.validLength)
                bytes.removeSubrange(scan.validLength...)
            }
            if scan.validLength == 0 {
                let header = JournalRecord.headerFrame
                try header.withUnsafeBytes { try Platform.writeAll(fd, $0) }
                try Platform.sync(fd)
                Platform.syncDirectory(of: path)
            }
            self.fd = fd
            held = JournalContents(bytes: bytes, scan: scan)
            state = Mutex(State(nextKey: (held.calls.map(\.key).max() ?? 0) + 1))
        } catch {
            Platform.close(fd)
            throw error
        }
        let interval = syncIntervalNanos
        try OSThread.start(name: "mp-journal") { [self] in self.syncLoop(interval: interval) }
    }

    /// A new call's key (unique in the file) and ordinal (its place among this run's calls).
    func nextCall() -> (key: UInt64, ordinal: UInt64) {
        state.withLock { state in
            defer {
                state.nextKey += 1
                state.nextOrdinal += 1
            }
            return (state.nextKey, state.nextOrdinal)
        }
    }

    /// Appends a framed record with one `write`. A failure (disk full, I/O error) is
    /// reported once on stderr, and the journal writes nothing more in this process:
    /// the calls go on and return their results, which are then not journaled.
    func append(payload: [UInt8]) {
        let frame = JournalRecord.frame(payload)
        state.withLock { state in
            guard !state.failed else { return }
            do {
                try frame.withUnsafeBytes { try Platform.writeAll(fd, $0) }
            } catch {
                state.failed = true
                Platform.writeToStandardError(
                    "swift-multiprocessing: warning: cannot write to the journal \(path) (\(describe(error))); results from now on are not journaled\n"
                )
            }
        }
        dirty.store(true, ordering: .releasing)
    }

    /// Makes every record appended so far durable; returns once `fsync` is done. Does not
    /// block the calling thread (the journal's thread runs it).
    func sync() async {
        await withCheckedContinuation { continuation in
            syncLock.lock()
            syncWaiters.append(continuation)
            syncLock.signal()
            syncLock.unlock()
        }
    }

    /// `fsync` now, on the calling thread (the signal thread: it may block).
    func syncNow() {
        dirty.store(false, ordering: .relaxed)
        try? Platform.sync(fd)
    }

    private func syncLoop(interval: UInt64) {
        while true {
            syncLock.lock()
            if syncWaiters.isEmpty { syncLock.wait(nanoseconds: interval) }
            let waiters = syncWaiters
            syncWaiters.removeAll()
            syncLock.unlock()
            if dirty.exchange(false, ordering: .acquiringAndReleasing) || !waiters.isEmpty {
                try? Platform.sync(fd)
            }
            for waiter in waiters { waiter.resume() }
        }
    }
}

/// The journals this process has open, by path.
enum JournalRegistry {
    private static let open = Mutex<[String: Journal]>([:])

    /// The journal at `path`, opened (on a thread of its own) the first time.
    /// - Throws: the errors of ``Journal/init(path:syncIntervalNanos:)``.
    static func journal(path: String, syncIntervalNanos: UInt64) async throws -> Journal {
        if let journal = open.withLock({ $0[path] }) { return journal }
        let opened: Result<Journal, any Error> = await withCheckedContinuation { continuation in
            do {
                try OSThread.start(name: "mp-journal-open") {
                    continuation.resume(
                        returning: Result { try Journal(path: path, syncIntervalNanos: syncIntervalNanos) })
                }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        let journal = try opened.get()
        return open.withLock { open in
            if let existing = open[path] { return existing }  // opened twice at once: lock failed for one
            open[path] = journal
            return journal
        }
    }

    /// `fsync`s every open journal now, on the calling thread (SIGINT/SIGTERM).
    static func syncAllNow() {
        for journal in open.withLock({ Array($0.values) }) { journal.syncNow() }
    }
}

/// The records of a journal's bytes, read once.
struct JournalContents: Sendable {
    /// The valid records' bytes.
    let contents: [UInt8]
    /// The call records, in file order.
    let calls: [JournalCallInfo]
    /// The results records, by call key, in file order.
    let results: [UInt64: [JournalResults]]
    /// Bytes of a torn or corrupt tail after the valid records.
    let droppedBytes: Int

    init(bytes: [UInt8], scan: JournalScan) {
        var calls: [JournalCallInfo] = []
        var results: [UInt64: [JournalResults]] = [:]
        for record in scan.records {
            switch record {
            case .header: break
            case .call(let info): calls.append(info)
            case .results(let chunk): results[chunk.callKey, default: []].append(chunk)
            }
        }
        contents = Array(bytes.prefix(scan.validLength))
        self.calls = calls
        self.results = results
        droppedBytes = scan.droppedBytes
    }

    /// Reads a journal without changing it (nothing truncated, no lock taken).
    /// - Throws: ``MultiprocessingError/Code/invalidArgument`` when it is not a journal;
    ///   ``MultiprocessingError/Code/systemCallFailed`` when it cannot be read.
    static func read(path: String) throws -> JournalContents {
        let fd = try Platform.openForReading(path)
        defer { Platform.close(fd) }
        let bytes = try Platform.readWholeFile(fd)
        let scan = try bytes.withUnsafeBytes { raw throws(MultiprocessingError) in
            try JournalScan.scan(raw, path: path)
        }
        return JournalContents(bytes: bytes, scan: scan)
    }
}
