#if os(Linux)
/// What a pool's timeline records (``ProcessPool/Options/timelinePath``): every chunk on
/// every worker, with the worker's own start and end times, and the workers' lives. The
/// supervisor (its event loop's owner) feeds it; nothing here is shared between threads.
///
/// Per chunk it costs a comparison and, usually, an append of a few integers; the trace
/// and the picture are built only when the pool closes (or is interrupted), see
/// ``TimelineTrace`` and ``TimelinePicture``.
///
/// **Merging.** Runs of chunks shorter than ``mergeBelowNanos`` that follow each other on
/// one worker, in the same call, are kept as one event while the run spans less than
/// ``mergeBelowNanos`` (from the first chunk's start to the last one's end): a map of a
/// million tiny items makes at most about one event per millisecond per worker, not a
/// million. A chunk of 1 ms or more is never merged, and nothing is merged into it. A
/// merged event spans its chunks and the gaps between them (each under 1 ms); it keeps the
/// sum of the chunks' own times as its busy time.
///
/// **Clocks.** A worker notes its times on its own `CLOCK_MONOTONIC`. On this node that is
/// the pool's clock, exactly. For workers on other nodes the offset of their node's clock is
/// bounded from every chunk: the chunk cannot start before the pool queued its task, nor end
/// after the pool read its result, so `queued - start <= offset <= read - end`. The
/// tightest bounds over all chunks from the node give the offset (their midpoint) and its
/// error (half their gap: at most half the shortest round trip between queueing a task and
/// reading its result, typically tens of microseconds on a cluster network; drift between
/// the nodes' clocks during the run is not modelled).
final class TimelineRecorder {
    /// Chunks shorter than this may be merged into one event (see the type's notes): 1 ms,
    /// the finest detail a picture of a whole map shows, and the bound.
    static let mergeBelowNanos: UInt64 = 1_000_000

    /// One worker process.
    struct Track {
        let slot: Int
        var pid: Int32
        /// Its node: for a remote worker, the node name its worker host gave (one clock per
        /// host), else the host name it said in its hello.
        var host: String
        /// It runs on another node (its times need the node's clock offset).
        let remote: Bool
        /// When it was started, and when it ended (the pool's clock).
        let startNanos: UInt64
        var endNanos: UInt64?
        /// Its last event, while chunks may still merge into it; -1 when none may.
        var openEvent = -1
        /// Remote workers: when the pool queued each chunk it still holds (oldest first).
        var queued: [UInt64] = []
        var queuedHead = 0
    }

    /// One chunk, or a merged run of short chunks, on one track.
    struct ChunkEvent {
        let track: Int
        let callID: UInt64
        /// The worker's clock (the pool's for local workers).
        var start: UInt64
        var end: UInt64
        /// The sum of the chunks' own times (equals `end - start` for a single chunk).
        var busy: UInt64
        /// The first chunk's items, and the last one's (the same for a single chunk).
        let firstItems: Range<Int>
        var lastItems: Range<Int>
        var items: Int
        var chunks: Int
        var failed: Int
    }

    /// Something that happened to a worker at one moment (the pool's clock).
    struct Instant {
        enum Kind: String {
            case started, respawned, exited, died, timedOut = "timed out", retried, failed
        }
        let track: Int
        let nanos: UInt64
        let kind: Kind
        let detail: String
    }

    /// The chunk a worker was on when it died or timed out: from when the pool saw the worker
    /// could start it (sent to an idle worker, or the previous result read) to its end, on
    /// the pool's clock (the worker never reported its own times for it).
    struct LostChunk {
        let track: Int
        let callID: UInt64
        let items: Range<Int>
        let start: UInt64
        let end: UInt64
        let kind: Instant.Kind
    }

    /// The bounds on one node's clock offset (pool clock minus node clock).
    struct ClockBounds {
        var low = Int64.min
        var high = Int64.max
        var samples = 0
        /// The offset used (the midpoint), and its error bound: half the gap between the
        /// bounds. Crossed bounds (`low > high`: the node's clock drifted during the run)
        /// still give their midpoint, with half their overlap as the error.
        var offset: Int64 { samples == 0 ? 0 : low / 2 + high / 2 }
        var error: Int64 { samples == 0 ? 0 : abs(high / 2 - low / 2) }
    }

    let path: String
    /// When the pool started (the pool's clock): time zero of the trace.
    let originNanos: UInt64
    private(set) var tracks: [Track] = []
    private(set) var events: [ChunkEvent] = []
    private(set) var instants: [Instant] = []
    private(set) var lost: [LostChunk] = []
    /// Calls in the order they were submitted: id, name, and when.
    private(set) var calls: [(id: UInt64, name: String, startNanos: UInt64)] = []
    /// Per remote node.
    private(set) var clocks: [String: ClockBounds] = [:]
    /// Slots being filled again after a worker died: the next worker started there is a respawn.
    private var respawning: Set<Int> = []
    /// The track of the worker that ended last (whose items are being settled).
    private var endedTrack: Int?

    init(path: String, originNanos: UInt64) {
        self.path = path
        self.originNanos = originNanos
    }

    /// The HTML picture's path: the trace's, with `.html` for `.json` (or appended).
    static func picturePath(for path: String) -> String {
        path.hasSuffix(".json") ? String(path.dropLast(5)) + ".html" : path + ".html"
    }

    // MARK: - Recording (the supervisor calls these)

    func callStarted(id: UInt64, name: String) {
        calls.append((id, name, Platform.monotonicNanos()))
    }

    /// A worker process was started (or, for a remote one, connected): it gets a track.
    func workerStarted(_ worker: WorkerConnection) {
        let now = Platform.monotonicNanos()
        worker.timelineTrack = tracks.count
        tracks.append(
            Track(
                slot: worker.slot, pid: worker.pid, host: worker.host,
                remote: !worker.ownsProcess,
                startNanos: now))
        let respawn = respawning.remove(worker.slot) != nil
        instants.append(
            Instant(track: worker.timelineTrack, nanos: now, kind: respawn ? .respawned : .started, detail: ""))
    }

    /// The slot's next worker replaces one that ended (``workerStarted(_:)`` marks it).
    func respawning(slot: Int) { respawning.insert(slot) }

    /// A chunk was queued for `worker` (only remote workers' send times are kept).
    @inline(__always)
    func queued(to worker: WorkerConnection) {
        let track = worker.timelineTrack
        guard track >= 0, tracks[track].remote else { return }
        tracks[track].queued.append(Platform.monotonicNanos())
    }

    /// A chunk's result arrived (read by the pool at `readNanos`).
    func chunk(
        from worker: WorkerConnection, callID: UInt64, items range: Range<Int>, header: Message.Result,
        readNanos: UInt64
    ) {
        let track = worker.timelineTrack
        guard track >= 0 else { return }
        if tracks[track].pid != worker.pid { noteIdentity(worker) }
        if tracks[track].remote { bound(track, header.times, readNanos: readNanos) }
        guard let times = header.times, times.end >= times.start else { return }
        let own = times.end - times.start
        let open = tracks[track].openEvent
        if own < Self.mergeBelowNanos, open >= 0, events[open].callID == callID,
            times.start >= events[open].end, times.end - events[open].start < Self.mergeBelowNanos
        {
            events[open].end = times.end
            events[open].busy += own
            events[open].lastItems = range
            events[open].items += range.count
            events[open].chunks += 1
            events[open].failed += header.failedCount
            return
        }
        events.append(
            ChunkEvent(
                track: track, callID: callID, start: times.start, end: times.end, busy: own,
                firstItems: range, lastItems: range, items: range.count, chunks: 1,
                failed: header.failedCount))
        tracks[track].openEvent = own < Self.mergeBelowNanos ? events.count - 1 : -1
    }

    /// Narrows the bounds on a remote node's clock offset with one chunk (see the type's notes).
    private func bound(_ track: Int, _ times: Message.Result.Times?, readNanos: UInt64) {
        var queuedNanos: UInt64?
        if tracks[track].queuedHead < tracks[track].queued.count {
            queuedNanos = tracks[track].queued[tracks[track].queuedHead]
            tracks[track].queuedHead += 1
            if tracks[track].queuedHead > 64, tracks[track].queuedHead * 2 > tracks[track].queued.count {
                tracks[track].queued.removeFirst(tracks[track].queuedHead)
                tracks[track].queuedHead = 0
            }
        }
        guard let times, let queuedNanos else { return }
        var bounds = clocks[tracks[track].host] ?? ClockBounds()
        bounds.low = max(bounds.low, Int64(bitPattern: queuedNanos &- times.start))
        bounds.high = min(bounds.high, Int64(bitPattern: readNanos &- times.end))
        bounds.samples += 1
        clocks[tracks[track].host] = bounds
    }

    private func noteIdentity(_ worker: WorkerConnection) {
        tracks[worker.timelineTrack].pid = worker.pid
        if worker.ownsProcess { tracks[worker.timelineTrack].host = worker.host }
    }

    /// A worker process ended: it timed out, died (`running`: while the pool needed it, and
    /// not stopped for a cancelled call), or exited.
    func workerEnded(_ worker: WorkerConnection, _ termination: ProcessTermination, running: Bool) {
        let track = worker.timelineTrack
        guard track >= 0 else { return }
        let kind: Instant.Kind
        if case .timedOut = worker.stopReason {
            kind = .timedOut
        } else if running && worker.stopReason != .cancelled {
            kind = .died
        } else {
            kind = .exited
        }
        let description = worker.endDescription(termination)
        let now = Platform.monotonicNanos()
        if kind != .exited, let oldest = worker.inFlight.first, worker.clockStartNanos > 0 {
            lost.append(
                LostChunk(
                    track: track, callID: oldest.callID, items: oldest.chunk.payload.task.itemRange,
                    start: min(worker.clockStartNanos, now), end: now, kind: kind))
        }
        noteIdentity(worker)
        tracks[track].endNanos = now
        tracks[track].openEvent = -1
        instants.append(Instant(track: track, nanos: now, kind: kind, detail: description))
        endedTrack = track
    }

    /// Items of the worker that ended last were retried elsewhere, or failed for good.
    func settled(items range: Range<Int>, retried: Bool) {
        guard let track = endedTrack else { return }
        instants.append(
            Instant(
                track: track, nanos: Platform.monotonicNanos(), kind: retried ? .retried : .failed,
                detail: "items \(range.lowerBound)..<\(range.upperBound)"))
    }

    // MARK: - Reading (when writing the files)

    /// An event's start and end on the pool's clock, in nanoseconds since the pool started.
    func placed(_ event: ChunkEvent) -> (start: Int64, end: Int64) {
        let offset = tracks[event.track].remote ? (clocks[tracks[event.track].host]?.offset ?? 0) : 0
        let origin = Int64(bitPattern: originNanos)
        return (
            Int64(bitPattern: event.start) &+ offset &- origin, Int64(bitPattern: event.end) &+ offset &- origin
        )
    }

    /// The lost chunks, placed after the last event of their track (so that none overlaps it).
    func placedLost() -> [(chunk: LostChunk, start: Int64, end: Int64)] {
        guard !lost.isEmpty else { return [] }
        var lastEnd: [Int: Int64] = [:]
        for event in events { lastEnd[event.track] = max(lastEnd[event.track] ?? .min, placed(event).end) }
        return lost.map { chunk in
            let end = sinceOrigin(chunk.end)
            let start = min(end, max(sinceOrigin(chunk.start), lastEnd[chunk.track] ?? .min))
            return (chunk, start, end)
        }
    }

    /// When each call's last chunk ended (nanoseconds since the pool started).
    func callEnds() -> [UInt64: Int64] {
        var ends: [UInt64: Int64] = [:]
        for event in events {
            let end = placed(event).end
            if end > ends[event.callID] ?? .min { ends[event.callID] = end }
        }
        return ends
    }

    /// An event's items: `4..<8`, or for a merged run its first and last chunks' (`0..<4 … 16..<20`).
    static func itemsText(_ event: ChunkEvent) -> String {
        let first = "\(event.firstItems.lowerBound)..<\(event.firstItems.upperBound)"
        guard event.chunks > 1 else { return first }
        return first + " … \(event.lastItems.lowerBound)..<\(event.lastItems.upperBound)"
    }

    /// Nanoseconds since the pool started.
    func sinceOrigin(_ nanos: UInt64) -> Int64 { Int64(bitPattern: nanos &- originNanos) }

    /// The call's name with its number (`mapReduce #1`), for labels.
    func callLabel(_ id: UInt64) -> String {
        guard let index = calls.firstIndex(where: { $0.id == id }) else { return "call \(id)" }
        return "\(calls[index].name) #\(index + 1)"
    }

    /// Writes the trace and the picture (replacing earlier versions) with the pool's figures.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` when a file cannot be written.
    func write(report: PoolReport, final: Bool) throws {
        let trace = TimelineTrace(self, report: report, final: final).json()
        try Platform.replaceFile(path, with: Array(trace.utf8))
        let picture = TimelinePicture(self, report: report, final: final).html()
        try Platform.replaceFile(Self.picturePath(for: path), with: Array(picture.utf8))
    }
}
#endif
