import Foundation
import Testing

@testable import Multiprocessing

/// The pool's timeline (``ProcessPool/Options/timelinePath``, `MP_TIMELINE`, `pi --timeline`):
/// a Chrome trace with one complete event per chunk on one track per worker process, and an
/// HTML picture that headless Chromium renders.
@Suite("Timeline", .timeLimit(.minutes(3)))
struct TimelineTests {
    /// A fresh directory for one test's files.
    func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mp-timeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    struct Complete {
        var tid: Int
        var ts: Double
        var dur: Double
        var args: [String: Any]
        var items: Range<Int> {
            let parts = (args["items"] as? String ?? "0..<0").components(separatedBy: "..<").compactMap { Int($0) }
            return parts.count == 2 && parts[0] <= parts[1] ? parts[0]..<parts[1] : 0..<0
        }
        var count: Int { args["count"] as? Int ?? -1 }
        var chunks: Int { args["chunks"] as? Int ?? 1 }
        var call: String { args["call"] as? String ?? "" }
    }

    struct Trace {
        var object: [String: Any]
        var events: [[String: Any]] { object["traceEvents"] as? [[String: Any]] ?? [] }
        var other: [String: Any] { object["otherData"] as? [String: Any] ?? [:] }
        /// Complete events of chunks (not of `lost` ones).
        var complete: [Complete] { allComplete.filter { $0.args["lost"] == nil } }
        var allComplete: [Complete] {
            events.filter { $0["ph"] as? String == "X" }.map {
                Complete(
                    tid: $0["tid"] as? Int ?? -1, ts: $0["ts"] as? Double ?? .nan, dur: $0["dur"] as? Double ?? .nan,
                    args: $0["args"] as? [String: Any] ?? [:])
            }
        }
        /// Instant events' names, with how often each occurs.
        var instants: [String: Int] {
            var counts: [String: Int] = [:]
            for event in events where event["ph"] as? String == "i" {
                counts[event["name"] as? String ?? "", default: 0] += 1
            }
            return counts
        }
        /// Track names by tid.
        var trackNames: [Int: String] {
            var names: [Int: String] = [:]
            for event in events where event["name"] as? String == "thread_name" {
                names[event["tid"] as? Int ?? -1] = (event["args"] as? [String: Any])?["name"] as? String
            }
            return names
        }

        init(_ url: URL) throws {
            let data = try Data(contentsOf: url)
            object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        }

        /// Pairs of events of one track that overlap (there must be none).
        func overlaps() -> [String] {
            var found: [String] = []
            for (tid, events) in Dictionary(grouping: allComplete, by: \.tid) {
                let sorted = events.sorted { $0.ts < $1.ts }
                for (a, b) in zip(sorted, sorted.dropFirst()) where a.ts + a.dur > b.ts + 0.0005 {
                    found.append("track \(tid): \(a.ts)+\(a.dur) overlaps \(b.ts)")
                }
            }
            return found
        }
    }

    @Test("pi --timeline on two workers: one event per chunk on two worker tracks, no overlap, busy time matches")
    func piTimeline() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.json")
        let pi = FixtureProcess.buildDirectory.appendingPathComponent("pi").path
        let outcome = try await FixtureProcess.runProcess(
            [pi, "--workers", "2", "--chunks", "24", "--samples", "1000000", "--timeline", path.path],
            waitingFor: "pi --timeline")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let trace = try Trace(path)
        #expect(trace.other["complete"] as? Bool == true)
        let events = trace.complete
        let tracks = Set(events.map(\.tid))
        #expect(tracks.count == 2, "two worker tracks: \(tracks)")
        for tid in tracks {
            let name = trace.trackNames[tid] ?? ""
            #expect(
                name.range(of: #"^worker [01] · pid [1-9][0-9]* · \S+$"#, options: .regularExpression) != nil, "\(name)"
            )
        }
        #expect(events.allSatisfy { $0.call == "mapReduce #1" && $0.chunks == 1 && $0.dur > 0 })
        // One event per chunk: the chunks' item ranges cover the 24 items once each.
        let items = events.flatMap { Array($0.items) }.sorted()
        #expect(items == Array(0..<24), "items of the events: \(items)")
        #expect(events.allSatisfy { $0.count == $0.items.count })
        #expect(trace.overlaps().isEmpty, "\(trace.overlaps())")
        // The events span the worker's decoding, running and encoding; the report's busy
        // time only the running: equal within a few percent for pi's tiny inputs.
        let busy = (trace.other["busy_s"] as? [Double] ?? []).reduce(0, +)
        let durations = events.reduce(0) { $0 + $1.dur } / 1e6
        #expect(busy > 0)
        #expect(durations >= busy * 0.999 && durations <= busy * 1.05, "events \(durations) s, busy \(busy) s")
        #expect(trace.instants["worker started"] == 2)
        #expect(trace.instants["worker exited"] == 2)
        #expect(trace.instants["mapReduce #1 started"] == 1)

        let html = try String(contentsOf: dir.appendingPathComponent("t.html"), encoding: .utf8)
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(html.contains("<svg") && html.contains("24 items in "))
        #expect(html.contains("mapReduce #1: "), "the call's idle tail is summed up")
        for external in ["<script", "src=", "href=", "@import", "url(http", "<link"] {
            #expect(!html.contains(external), "the picture fetches nothing: \(external)")
        }
        try await expectRenders(dir.appendingPathComponent("t.html"), minimumBarPixels: 2_000)
    }

    @Test(
        "a worker's death, its respawn, retries, a timeout and a failed item are marked; chunks are on their own worker's track"
    )
    func faults() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("faults.json")
        let outcome = try await FixtureProcess.run(
            ["timeline-faults"], environment: ["MP_TIMELINE": path.path], waitingFor: "timeline-faults")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.lines.count == 3, "\(outcome.transcript)")
        #expect(outcome.ints("values", on: "map ") == (0..<20).map { $0 * 10 }, "\(outcome.transcript)")
        #expect(outcome.lines.dropFirst() == ["timeout item [\"failed\"]", "after [25]"])
        let trace = try Trace(path)
        let instants = trace.instants
        #expect(instants["worker died"] == 1, "\(instants)")
        #expect(instants["timed out"] == 2, "\(instants)")
        #expect(instants["retried"] == 2, "item 7 after the death, item 4 after its first timeout: \(instants)")
        #expect(instants["failed"] == 1, "\(instants)")
        #expect(instants["worker respawned"] == 3, "\(instants)")
        #expect(trace.trackNames.count == 1 + 5, "the pool's track, and one per worker process: 2 + 3 respawned")
        #expect(trace.overlaps().isEmpty, "\(trace.overlaps())")
        // The map's chunks that answered hold its 20 items once (the dead worker's chunk has
        // no event: its items went elsewhere); the timed-out item has none.
        #expect(trace.complete.filter { $0.call == "map #1" }.reduce(0) { $0 + $1.count } == 20)
        #expect(trace.complete.filter { $0.call == "imap #2" }.isEmpty)
        // The chunks lost with their workers: the one the dead worker was on, and the
        // timed-out item twice, each at least as long as the timeout.
        let lost = trace.allComplete.filter { $0.args["lost"] != nil }
        #expect(lost.map(\.call).sorted() == ["imap #2", "imap #2", "map #1"], "\(lost.map(\.args))")
        #expect(lost.filter { $0.call == "map #1" }.map(\.items) == [4..<8])
        #expect(lost.filter { $0.call == "imap #2" }.allSatisfy { $0.items == 0..<1 && $0.dur >= 400_000 })
        #expect(trace.complete.filter { $0.call == "map #3" }.map(\.count) == [1])
        let html = try String(contentsOf: dir.appendingPathComponent("faults.html"), encoding: .utf8)
        #expect(html.contains("<title>died ") && html.contains("<title>timed out "))
        try await expectRenders(dir.appendingPathComponent("faults.html"), minimumBarPixels: 100)
    }

    @Test("runs of chunks under 1 ms merge into events of under 1 ms; the options' path wins over MP_TIMELINE")
    func tinyChunksMerge() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.json")
        let ignored = dir.appendingPathComponent("env.json")
        let outcome = try await FixtureProcess.run(
            ["timeline-tiny", "20000"], environment: ["FIXTURE_TIMELINE": path.path, "MP_TIMELINE": ignored.path],
            waitingFor: "timeline-tiny")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.int("count", on: "map ") == 20000, "\(outcome.transcript.prefix(500))")
        #expect(outcome.ints("values", on: "map ") == (0..<20000).map { $0 * $0 })
        #expect(!FileManager.default.fileExists(atPath: ignored.path))
        let trace = try Trace(path)
        let events = trace.complete
        #expect(events.reduce(0) { $0 + $1.count } == 20_000)
        #expect(events.reduce(0) { $0 + $1.chunks } == 20_000)
        #expect(events.contains { $0.chunks > 1 })
        #expect(
            events.filter { $0.chunks > 1 }.allSatisfy {
                $0.dur < 1000 && ($0.args["busy_us"] as? Double ?? 1e9) <= $0.dur + 0.001
            })
        #expect(trace.overlaps().isEmpty, "\(trace.overlaps())")
        // Two consecutive events of a track span at least 1 ms (else they would have merged).
        let elapsedMilliseconds = (trace.other["elapsed_s"] as? Double ?? 0) * 1000
        for (tid, perTrack) in Dictionary(grouping: events, by: \.tid) {
            #expect(Double(perTrack.count) <= 2 * elapsedMilliseconds + 2, "track \(tid): \(perTrack.count) events")
        }
        let size = try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int ?? 0
        #expect(size < 20_000 * 50, "the trace of 20,000 chunks is \(size) bytes")
    }

    @Test("a timeline path that cannot be written is a warning when the pool starts and when it closes; the map works")
    func unwritable() async throws {
        let path = "/nonexistent-\(UUID().uuidString)/t.json"
        let outcome = try await FixtureProcess.run(
            ["timeline-tiny", "100"], environment: ["FIXTURE_TIMELINE": path], waitingFor: "timeline-tiny")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.int("count", on: "map ") == 100, "\(outcome.transcript.prefix(500))")
        #expect(outcome.ints("values", on: "map ") == (0..<100).map { $0 * $0 })
        #expect(
            outcome.stderr.contains(
                "swift-multiprocessing: warning: the timeline \(path) cannot be written (open: No such file or directory); the pool starts anyway"
            ), "\(outcome.stderr)")
        #expect(
            outcome.stderr.contains("swift-multiprocessing: warning: could not write the timeline \(path): "),
            "\(outcome.stderr)")
    }

    @Test("SIGTERM: the timeline holds what the pool had, marked incomplete, while the program still runs")
    func interrupted() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("stopped.json")
        let (process, out, err) = try FixtureProcess.start(
            ["long-map"], environment: ["MP_TIMELINE": path.path, "FIXTURE_LINGER": "1"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func stdout() -> String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        // What the program printed so far, and its stderr: a failure says what it saw.
        func transcript() -> String {
            "stdout:\n\(stdout())stderr:\n\((try? String(contentsOf: err, encoding: .utf8)) ?? "")"
        }
        guard
            let sent = await OwnThread.sendSignals(
                [SIGTERM], to: process, whenLineStarts: "children ", in: out, after: .milliseconds(800))
        else {
            Issue.record("long-map did not start: \(transcript())")
            return
        }
        let signalled = sent.signals.joined(separator: "; ")
        let deadline = ContinuousClock.now + .seconds(30)
        while !stdout().contains("results received=") {
            guard ContinuousClock.now < deadline, process.isRunning else {
                Issue.record(
                    "long-map did not report its interruption (SIGTERM sent \(signalled)): \(transcript())"
                )
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let seen = FixtureProcess.Outcome(status: 0, signaled: false, stdout: stdout(), stderr: "")
        #expect(seen.line("code=").hasPrefix("code=interrupted index=nil"), "\(transcript())")
        #expect((seen.int("received", on: "results ") ?? 0) > 0, "\(transcript())")
        #expect(process.isRunning, "the program lingers: its pool is not closed yet")
        let trace = try Trace(path)
        #expect(trace.other["complete"] as? Bool == false)
        #expect(!trace.complete.isEmpty)
        #expect(trace.overlaps().isEmpty)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("stopped.html").path))
    }

    @Test("a result frame carries the chunk's times only when its call asked for them")
    func resultTimes() throws {
        let timed = Message.Result(
            callID: 3, chunkID: 9, computeNanos: 1_000, status: Message.Result.perItem, failedCount: 2,
            times: .init(start: 123_456_789, end: 987_654_321))
        let untimed = Message.Result(callID: 3, chunkID: 9, computeNanos: 1_000, status: Message.Result.perItem)
        for header in [timed, untimed] {
            var writer = ByteWriter()
            header.write(to: &writer)
            let decoded = try writer.bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                return try Message.Result(&reader)
            }
            #expect(decoded == header)
        }
        var plain = ByteWriter()
        untimed.write(to: &plain)
        #expect(plain.count == 1 + 1 + 2 + 1 + 4, "an untimed header is as small as before")
        var install = ByteWriter()
        Message.Install(callID: 4, typeName: "T", timesChunks: true).write(to: &install)
        let decoded = try install.bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return try Message.Install(&reader)
        }
        #expect(decoded.timesChunks && decoded.callID == 4 && decoded.typeName == "T")
        #expect(TimelineRecorder.picturePath(for: "/a/t.json") == "/a/t.html")
        #expect(TimelineRecorder.picturePath(for: "trace") == "trace.html")
    }

    /// Renders `html` with headless Chromium and checks the PNG: present, not tiny, more than
    /// a few colours, and at least `minimumBarPixels` pixels of the first call's colour. When
    /// Chromium is missing (scripts/install-chromium could not run: no root or apt), the check
    /// is skipped with a message, except under CI.
    func expectRenders(_ html: URL, minimumBarPixels: Int) async throws {
        let chromium = "/usr/bin/chromium"
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("chromium is missing: scripts/test installs it with scripts/install-chromium")
            } else {
                print("TimelineTests: chromium is missing (run scripts/install-chromium); the picture was not rendered")
            }
            return
        }
        let png = html.deletingPathExtension().appendingPathExtension("png")
        let render = try await FixtureProcess.runProcess(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1240,700",
                "--user-data-dir=\(html.deletingLastPathComponent().appendingPathComponent("chromium").path)",
                "--screenshot=\(png.path)", html.absoluteString,
            ], timeout: .seconds(90), waitingFor: "chromium --screenshot")
        #expect(render.status == 0, "\(render.stderr)")
        let size = try FileManager.default.attributesOfItem(atPath: png.path)[.size] as? Int ?? 0
        #expect(size > 5_000, "the PNG is \(size) bytes")
        let check = try await FixtureProcess.runProcess(
            ["/usr/bin/python3", "-c", Self.pngCheck, png.path, "4e79a7"], waitingFor: "the PNG check")
        #expect(check.status == 0, "\(check.stderr)")
        let figures = check.stdout.split(separator: " ").compactMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(figures.count == 4, "\(check.stdout)")
        if figures.count == 4 {
            #expect(figures[0] == 1240, "width")
            #expect(figures[2] >= 8, "distinct colours: \(figures[2])")
            #expect(figures[3] >= minimumBarPixels, "pixels of the call's colour: \(figures[3])")
        }
    }

    /// Decodes an 8-bit RGB or RGBA PNG (zlib and the five row filters) and prints its
    /// width, height, number of distinct colours and pixels of one colour (hex, argv[2]).
    static let pngCheck = """
        import sys, zlib, struct
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'not a PNG'
        pos, idat = 8, b''
        while pos < len(data):
            length, kind = struct.unpack('>I4s', data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            if kind == b'IHDR':
                width, height, depth, colour = struct.unpack('>IIBB', body[:10])
            elif kind == b'IDAT':
                idat += body
            pos += 12 + length
        assert depth == 8 and colour in (2, 6), (depth, colour)
        bpp = 3 if colour == 2 else 4
        raw = zlib.decompress(idat)
        stride = width * bpp
        previous = bytearray(stride)
        colours, matches = set(), 0
        target = bytes.fromhex(sys.argv[2])
        for y in range(height):
            start = y * (stride + 1)
            kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                if kind == 1: row[i] = (row[i] + a) & 255
                elif kind == 2: row[i] = (row[i] + b) & 255
                elif kind == 3: row[i] = (row[i] + (a + b) // 2) & 255
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            for x in range(0, stride, bpp):
                pixel = bytes(row[x:x + 3])
                colours.add(pixel)
                if pixel == target: matches += 1
            previous = row
        print(width, height, len(colours), matches)
        """
}

/// A pool across both emulated nodes of the local Slurm: every worker is remote (started by
/// its node's worker host), so each node's clock offset is estimated from the chunks.
@Suite("Timeline across nodes", .serialized, .enabled(if: SlurmCluster.enabled), .timeLimit(.minutes(4)))
struct TimelineNodesTests {
    @Test("workers on two nodes: tracks name their node; each node's clock is placed within its error bound")
    func acrossNodes() async throws {
        guard SlurmCluster.require() else { return }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "mp-timeline-\(UUID().uuidString).json")
        defer {
            try? FileManager.default.removeItem(at: path)
            try? FileManager.default.removeItem(atPath: TimelineRecorder.picturePath(for: path.path))
        }
        let script = try SlurmCluster.script(
            "MP_TIMELINE=\(path.path) \(SlurmCluster.binary("mp-fixture")) nodes-map 40 20 0\necho \"job-status=$?\"")
        defer { try? FileManager.default.removeItem(atPath: script) }
        let (result, output) = try await SlurmCluster.batch(
            script,
            options: [
                "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=2", "--mem-per-cpu=256M", "--time=00:02:00",
            ], waitingFor: "the multi-node timeline job")
        #expect(result.status == 0 && output.contains("job-status=0"), "\(result.stderr)\(output)")
        let trace = try TimelineTests.Trace(path)
        let events = trace.complete
        #expect(events.reduce(0) { $0 + $1.count } == 40, "\(output)")
        #expect(trace.overlaps().isEmpty, "\(trace.overlaps())")
        let nodes = Set(trace.trackNames.values.compactMap { $0.components(separatedBy: " · ").last })
        #expect(nodes.isSuperset(of: ["node1", "node2"]), "\(trace.trackNames)")
        // The emulated nodes share this machine's clock: the true offset is 0, and the
        // estimate must lie within its stated error of it.
        let clocks = trace.other["remote_clocks"] as? [String: [String: Any]] ?? [:]
        #expect(Set(clocks.keys) == ["node1", "node2"], "\(clocks)")
        for (node, clock) in clocks {
            let offset = clock["offset_us"] as? Double ?? .nan
            let error = clock["error_us"] as? Double ?? .nan
            #expect(abs(offset) <= error + 0.002, "\(node): offset \(offset) µs, error \(error) µs")
            #expect(error < 20_000, "\(node): the bound is tight (\(error) µs)")
        }
    }
}
