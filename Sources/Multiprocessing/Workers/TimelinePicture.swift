#if os(Linux)
/// A pool's timeline as one self-contained HTML file (inline SVG and CSS, nothing fetched,
/// no script): the report's figures on top, then one row per worker slot with its chunks
/// as bars coloured by call (a merged run of short chunks is paler the more idle time it
/// holds), failed chunks outlined in red, the chunk a worker was on when it died or timed
/// out hatched in red, worker deaths, timeouts, retries and respawns
/// marked, and, for each call, the idle time of every worker between its last chunk and
/// the call's last result hatched, with the share of worker time it cost.
struct TimelinePicture {
    let recorder: TimelineRecorder
    let report: PoolReport
    let final: Bool

    init(_ recorder: TimelineRecorder, report: PoolReport, final: Bool) {
        self.recorder = recorder
        self.report = report
        self.final = final
    }

    /// Colours of calls, in order (cycled): distinguishable, and readable on white.
    static let palette = ["#4e79a7", "#59a14f", "#9c755f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#bab0ac"]
    static let width = 1200.0
    static let labelWidth = 260.0
    static let rowHeight = 22.0
    static let barHeight = 16.0

    /// One call's idle tail: per slot, when that slot's last chunk of the call ended.
    struct Tail {
        let callID: UInt64
        let start: Int64
        var end: Int64
        var lastEnd: [Int: Int64]
        /// The share of the slots' time during the call spent idle after their last chunk.
        var idleShare: Double
    }

    func html() -> String {
        let slots = Array(Set(recorder.tracks.map(\.slot))).sorted()
        var row: [Int: Int] = [:]
        for (index, slot) in slots.enumerated() { row[slot] = index }
        let placed = recorder.events.map { recorder.placed($0) }
        let elapsedNanos = max(
            Int64(report.elapsedSeconds * 1e9), placed.map(\.end).max() ?? 0,
            recorder.instants.map { recorder.sinceOrigin($0.nanos) }.max() ?? 0, 1)
        let plotLeft = Self.labelWidth
        let plotWidth = Self.width - plotLeft - 20
        let scale = plotWidth / Double(elapsedNanos)
        func x(_ nanos: Int64) -> Double { plotLeft + Double(max(0, nanos)) * scale }
        let top = 30.0
        let height = top + Double(slots.count) * Self.rowHeight + 60

        let tails = callTails(placed: placed, slots: slots)
        var callColour: [UInt64: String] = [:]
        for (index, call) in recorder.calls.enumerated() {
            callColour[call.id] = Self.palette[index % Self.palette.count]
        }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(Self.width)) \(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
            <defs><pattern id="idle" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">\
            <rect width="6" height="6" fill="#f3f3f3"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c0c0c0" stroke-width="2"/>\
            </pattern><pattern id="lost" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)">\
            <rect width="6" height="6" fill="#fbe3e3"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="2"/>\
            </pattern></defs>
            <rect width="100%" height="100%" fill="#ffffff"/>

            """
        // Time axis and grid.
        let step = Self.niceStep(Double(elapsedNanos) / 8)
        var tick = 0.0
        while tick <= Double(elapsedNanos) {
            let tx = x(Int64(tick))
            svg +=
                "<line x1=\"\(f(tx))\" y1=\"\(f(top - 4))\" x2=\"\(f(tx))\" y2=\"\(f(height - 50))\" stroke=\"#e4e4e4\"/>"
            svg +=
                "<text x=\"\(f(tx))\" y=\"\(f(top - 8))\" text-anchor=\"middle\" fill=\"#555\">\(Self.timeLabel(tick))</text>\n"
            tick += step
        }
        // Rows.
        for (index, slot) in slots.enumerated() {
            let y = top + Double(index) * Self.rowHeight
            if index % 2 == 1 {
                svg +=
                    "<rect x=\"0\" y=\"\(f(y))\" width=\"\(Int(Self.width))\" height=\"\(f(Self.rowHeight))\" fill=\"#fafafa\"/>"
            }
            let processes = recorder.tracks.filter { $0.slot == slot }
            let host = processes.last?.host ?? ""
            let last = processes.last.map { "pid \($0.pid)" } ?? ""
            let pidText = processes.count > 1 ? "\(last) +\(processes.count - 1) before" : last
            svg +=
                "<text x=\"6\" y=\"\(f(y + 15))\" fill=\"#222\">worker \(slot) · \(escape(host)) · \(escape(pidText))</text>\n"
        }
        // Idle tails, under the bars.
        for tail in tails {
            for (slot, lastEnd) in tail.lastEnd where lastEnd < tail.end {
                guard let index = row[slot] else { continue }
                let y = top + Double(index) * Self.rowHeight + (Self.rowHeight - Self.barHeight) / 2
                svg +=
                    "<rect x=\"\(f(x(lastEnd)))\" y=\"\(f(y))\" width=\"\(f(max(0.5, x(tail.end) - x(lastEnd))))\" height=\"\(f(Self.barHeight))\" fill=\"url(#idle)\"><title>idle at the end of \(escape(recorder.callLabel(tail.callID))): \(Self.timeLabel(Double(tail.end - lastEnd)))</title></rect>\n"
            }
        }
        // Chunks.
        for (event, place) in zip(recorder.events, placed) {
            guard let index = row[recorder.tracks[event.track].slot] else { continue }
            let y = top + Double(index) * Self.rowHeight + (Self.rowHeight - Self.barHeight) / 2
            let span = max(1, place.end - place.start)
            let opacity = event.chunks > 1 ? max(0.25, min(1, Double(event.busy) / Double(span))) : 1
            let colour = callColour[event.callID] ?? "#888"
            // White edges keep chunks that follow each other apart; failed ones are outlined in red.
            let stroke =
                event.failed > 0 ? " stroke=\"#d62728\" stroke-width=\"2\"" : " stroke=\"#fff\" stroke-width=\"0.6\""
            var title = "\(recorder.callLabel(event.callID)): items \(TimelineRecorder.itemsText(event))"
            title += " (\(event.items)), \(Self.timeLabel(Double(place.end - place.start)))"
            if event.chunks > 1 { title += ", \(event.chunks) chunks, busy \(Self.timeLabel(Double(event.busy)))" }
            if event.failed > 0 { title += ", \(event.failed) failed" }
            svg +=
                "<rect x=\"\(f(x(place.start)))\" y=\"\(f(y))\" width=\"\(f(max(0.5, Double(span) * scale)))\" height=\"\(f(Self.barHeight))\" fill=\"\(colour)\" fill-opacity=\"\(f(opacity))\"\(stroke)><title>\(escape(title))</title></rect>\n"
        }
        // Chunks lost with their worker: red hatching.
        for (chunk, start, end) in recorder.placedLost() {
            guard let index = row[recorder.tracks[chunk.track].slot] else { continue }
            let y = top + Double(index) * Self.rowHeight + (Self.rowHeight - Self.barHeight) / 2
            let what = chunk.kind == .timedOut ? "timed out" : "died"
            svg +=
                "<rect x=\"\(f(x(start)))\" y=\"\(f(y))\" width=\"\(f(max(1, Double(end - start) * scale)))\" height=\"\(f(Self.barHeight))\" fill=\"url(#lost)\" stroke=\"#d62728\" stroke-width=\"1\"><title>\(escape("\(recorder.callLabel(chunk.callID)): items \(chunk.items.lowerBound)..<\(chunk.items.upperBound), lost: the worker \(what)"))</title></rect>\n"
        }
        // Worker events.
        for instant in recorder.instants {
            guard let index = row[recorder.tracks[instant.track].slot] else { continue }
            let y = top + Double(index) * Self.rowHeight
            let ix = x(recorder.sinceOrigin(instant.nanos))
            let title = escape("\(instant.kind.rawValue) \(instant.detail)")
            switch instant.kind {
            case .died, .timedOut, .failed:
                svg +=
                    "<g stroke=\"#d62728\" stroke-width=\"2.5\"><title>\(title)</title><line x1=\"\(f(ix - 5))\" y1=\"\(f(y + 6))\" x2=\"\(f(ix + 5))\" y2=\"\(f(y + 16))\"/><line x1=\"\(f(ix - 5))\" y1=\"\(f(y + 16))\" x2=\"\(f(ix + 5))\" y2=\"\(f(y + 6))\"/></g>\n"
            case .retried:
                svg +=
                    "<path d=\"M\(f(ix - 5)) \(f(y + 2)) L\(f(ix + 5)) \(f(y + 2)) L\(f(ix)) \(f(y + 9)) Z\" fill=\"#ff7f0e\"><title>\(title)</title></path>\n"
            case .started, .respawned:
                let colour = instant.kind == .respawned ? "#2ca02c" : "#999"
                svg +=
                    "<line x1=\"\(f(ix))\" y1=\"\(f(y + 2))\" x2=\"\(f(ix))\" y2=\"\(f(y + Self.rowHeight - 2))\" stroke=\"\(colour)\" stroke-width=\"2\"><title>worker \(title)</title></line>\n"
            case .exited:
                break
            }
        }
        // Call ends.
        for tail in tails {
            let ex = x(tail.end)
            svg +=
                "<line x1=\"\(f(ex))\" y1=\"\(f(top - 2))\" x2=\"\(f(ex))\" y2=\"\(f(height - 50))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
        }
        // Legend.
        var lx = plotLeft
        let ly = height - 30
        for (index, call) in recorder.calls.enumerated() where index < 12 {
            let text = recorder.callLabel(call.id)
            svg +=
                "<rect x=\"\(f(lx))\" y=\"\(f(ly - 10))\" width=\"12\" height=\"12\" fill=\"\(callColour[call.id] ?? "#888")\"/><text x=\"\(f(lx + 16))\" y=\"\(f(ly))\">\(escape(text))</text>"
            lx += 30 + Double(text.count) * 7
        }
        svg +=
            "<rect x=\"\(f(lx))\" y=\"\(f(ly - 10))\" width=\"24\" height=\"12\" fill=\"url(#idle)\"/><text x=\"\(f(lx + 28))\" y=\"\(f(ly))\">idle before the call's last result</text>"
        lx += 260
        svg +=
            "<g stroke=\"#d62728\" stroke-width=\"2.5\"><line x1=\"\(f(lx))\" y1=\"\(f(ly - 9))\" x2=\"\(f(lx + 10))\" y2=\"\(f(ly + 1))\"/><line x1=\"\(f(lx))\" y1=\"\(f(ly + 1))\" x2=\"\(f(lx + 10))\" y2=\"\(f(ly - 9))\"/></g><text x=\"\(f(lx + 16))\" y=\"\(f(ly))\">worker died / timed out (its chunk hatched red)</text>"
        svg += "\n</svg>"

        var figures = report.description
        for tail in tails {
            figures +=
                "\n  \(recorder.callLabel(tail.callID)): \(Self.timeLabel(Double(tail.end - tail.start))) to its last result; \(Self.trimmed(tail.idleShare * 100))% of the workers' time in it idle at its end"
        }
        if !recorder.clocks.isEmpty {
            for (node, bounds) in recorder.clocks.sorted(by: { $0.key < $1.key }) {
                figures +=
                    "\n  clock of \(node): placed within ±\(Self.timeLabel(Double(bounds.error))) (\(bounds.samples) chunks)"
            }
        }
        let title = "swift-multiprocessing timeline: \(report.items) items, \(slots.count) workers"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:16px;color:#222;background:#fff}\
            h1{font-size:18px;margin:0 0 8px}pre{font-size:12px;margin:0 0 12px;white-space:pre-wrap}</style></head>
            <body><h1>\(escape(title))\(final ? "" : " (interrupted: what the pool had then)")</h1>
            <pre>\(escape(figures))</pre>
            \(svg)
            </body></html>

            """
    }

    /// The idle tail of every call that ran chunks: from the last chunk of the call on each
    /// slot that ran some to the call's last result.
    func callTails(placed: [(start: Int64, end: Int64)], slots: [Int]) -> [Tail] {
        var tails: [UInt64: Tail] = [:]
        var starts: [UInt64: Int64] = [:]
        for call in recorder.calls { starts[call.id] = recorder.sinceOrigin(call.startNanos) }
        for (event, place) in zip(recorder.events, placed) {
            let slot = recorder.tracks[event.track].slot
            let start = starts[event.callID] ?? place.start
            var tail =
                tails[event.callID] ?? Tail(callID: event.callID, start: start, end: 0, lastEnd: [:], idleShare: 0)
            tail.end = max(tail.end, place.end)
            tail.lastEnd[slot] = max(tail.lastEnd[slot] ?? .min, place.end)
            tails[event.callID] = tail
        }
        var ordered: [Tail] = []
        for call in recorder.calls {
            guard var tail = tails[call.id] else { continue }
            let length = Double(max(1, tail.end - tail.start))
            let idle = tail.lastEnd.values.reduce(0.0) { $0 + Double(max(0, tail.end - $1)) }
            tail.idleShare = idle / (length * Double(max(1, tail.lastEnd.count)))
            ordered.append(tail)
        }
        return ordered
    }

    /// A step of 1, 2 or 5 times a power of ten (nanoseconds), at least `rough`.
    static func niceStep(_ rough: Double) -> Double {
        guard rough > 1 else { return 1 }
        var power = 1.0
        while power * 10 <= rough { power *= 10 }
        for factor in [1.0, 2, 5, 10] where power * factor >= rough { return power * factor }
        return power * 10
    }

    /// `850 µs`, `12.5 ms`, `3.40 s`.
    static func timeLabel(_ nanos: Double) -> String {
        if nanos == 0 { return "0" }
        if nanos < 1e6 { return "\(Int((nanos / 1e3).rounded())) µs" }
        if nanos < 1e9 { return "\(trimmed(nanos / 1e6)) ms" }
        return "\(trimmed(nanos / 1e9)) s"
    }

    /// `value` with at most two decimals.
    static func trimmed(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
    }

    private func f(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
    }

    private func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
#endif
