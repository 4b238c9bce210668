#if os(Linux)
/// A pool's timeline in the Chrome trace event format (JSON; Perfetto, `chrome://tracing`
/// and Speedscope open it): one track (thread) per worker process, named with its slot,
/// pid and node; one complete event (`"ph":"X"`) per chunk, or per merged run of short
/// chunks (see ``TimelineRecorder``), from the worker's start of decoding its inputs to
/// its end of encoding its results; instant events for worker starts, respawns, exits,
/// deaths, timeouts, retries and failed items; the chunk a worker was on when it died or
/// timed out as a complete event of category `lost`, timed by the pool (from when the worker
/// could start it to its death); the calls' starts and ends on the pool's
/// own track (tid 0). Times are microseconds since the pool started.
struct TimelineTrace {
    let recorder: TimelineRecorder
    let report: PoolReport
    /// The pool closed normally (`true`), or a signal interrupted it: its trace ends there.
    let final: Bool

    init(_ recorder: TimelineRecorder, report: PoolReport, final: Bool) {
        self.recorder = recorder
        self.report = report
        self.final = final
    }

    /// The whole trace as one JSON object.
    func json() -> String {
        var out = "{\"traceEvents\":[\n"
        var first = true
        func add(_ event: String) {
            if !first { out += ",\n" }
            first = false
            out += event
        }
        add(
            "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\(Self.quoted("pool (pid \(Platform.processID) on \(Platform.hostName))"))}}"
        )
        add("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"pool: calls\"}}")
        add("{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"sort_index\":-1}}")
        // Worker tracks sorted by slot, then by start.
        let order = recorder.tracks.indices.sorted {
            (recorder.tracks[$0].slot, $0) < (recorder.tracks[$1].slot, $1)
        }
        for (rank, index) in order.enumerated() {
            let track = recorder.tracks[index]
            let name = "worker \(track.slot) · pid \(track.pid) · \(track.host)"
            add(
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":\(index + 1),\"args\":{\"name\":\(Self.quoted(name))}}"
            )
            add(
                "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":\(index + 1),\"args\":{\"sort_index\":\(rank)}}"
            )
        }
        var labels: [UInt64: String] = [:]
        for call in recorder.calls { labels[call.id] = Self.quoted(recorder.callLabel(call.id)) }
        for event in recorder.events {
            let (start, end) = recorder.placed(event)
            let label = labels[event.callID] ?? Self.quoted(recorder.callLabel(event.callID))
            var args =
                "\"call\":\(label),\"items\":\"\(TimelineRecorder.itemsText(event))\",\"count\":\(event.items)"
            if event.failed > 0 { args += ",\"failed\":\(event.failed)" }
            if event.chunks > 1 { args += ",\"chunks\":\(event.chunks),\"busy_us\":\(Self.micros(Int64(event.busy)))" }
            add(
                "{\"name\":\(label),\"cat\":\"\(event.chunks > 1 ? "chunks" : "chunk")\",\"ph\":\"X\",\"pid\":1,\"tid\":\(event.track + 1),\"ts\":\(Self.micros(start)),\"dur\":\(Self.micros(end - start)),\"args\":{\(args)}}"
            )
        }
        for (chunk, start, end) in recorder.placedLost() {
            let label = recorder.callLabel(chunk.callID)
            add(
                "{\"name\":\(Self.quoted(label + " (lost: worker \(chunk.kind == .timedOut ? "timed out" : "died"))")),\"cat\":\"lost\",\"ph\":\"X\",\"pid\":1,\"tid\":\(chunk.track + 1),\"ts\":\(Self.micros(start)),\"dur\":\(Self.micros(end - start)),\"args\":{\"call\":\(Self.quoted(label)),\"items\":\"\(chunk.items.lowerBound)..<\(chunk.items.upperBound)\",\"count\":\(chunk.items.count),\"lost\":true}}"
            )
        }
        for instant in recorder.instants {
            let name =
                instant.kind == .started || instant.kind == .respawned || instant.kind == .exited
                ? "worker \(instant.kind.rawValue)" : instant.kind == .died ? "worker died" : instant.kind.rawValue
            add(
                "{\"name\":\(Self.quoted(name)),\"cat\":\"worker\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":\(instant.track + 1),\"ts\":\(Self.micros(recorder.sinceOrigin(instant.nanos))),\"args\":{\"detail\":\(Self.quoted(instant.detail))}}"
            )
        }
        let ends = recorder.callEnds()
        for call in recorder.calls {
            let label = recorder.callLabel(call.id)
            add(
                "{\"name\":\(Self.quoted(label + " started")),\"cat\":\"call\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":0,\"ts\":\(Self.micros(recorder.sinceOrigin(call.startNanos)))}"
            )
            if let end = ends[call.id] {
                add(
                    "{\"name\":\(Self.quoted(label + " last result")),\"cat\":\"call\",\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":0,\"ts\":\(Self.micros(end))}"
                )
            }
        }
        out += "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{"
        var other: [(String, String)] = [
            ("complete", final ? "true" : "false"),
            ("report", Self.quoted(report.description)),
            ("items", "\(report.items)"), ("failures", "\(report.failures)"), ("retries", "\(report.retries)"),
            ("respawns", "\(report.respawns)"), ("elapsed_s", "\(report.elapsedSeconds)"),
            ("busy_s", "[" + report.workers.map { "\($0.busySeconds)" }.joined(separator: ",") + "]"),
            ("merged_below_ms", "\(Double(TimelineRecorder.mergeBelowNanos) / 1e6)"),
        ]
        let clocks = recorder.clocks.sorted { $0.key < $1.key }.map { node, bounds in
            "\(Self.quoted(node)):{\"offset_us\":\(Self.micros(bounds.offset)),\"error_us\":\(Self.micros(bounds.error)),\"chunks\":\(bounds.samples)}"
        }
        other.append(("remote_clocks", "{" + clocks.joined(separator: ",") + "}"))
        out += other.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        out += "}}\n"
        return out
    }

    /// Microseconds with three decimals (nanosecond precision), as JSON.
    static func micros(_ nanos: Int64) -> String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let fraction = String(magnitude % 1000)
        return "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
#endif
