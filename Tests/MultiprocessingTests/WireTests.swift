import Foundation
import Testing

@testable import Multiprocessing

@Suite("Wire frames")
struct FrameTests {
    func header(
        magic: (UInt8, UInt8) = Frame.magic, version: UInt8 = Frame.protocolVersion, kind: UInt8 = 4, length: UInt32
    ) -> [UInt8] {
        [magic.0, magic.1, version, kind] + withUnsafeBytes(of: length.littleEndian, Array.init)
    }

    @Test("frames queued together (small ones joined into one write) arrive whole and in order")
    func queuedFramesArriveInOrder() throws {
        let (a, b) = try Platform.socketPair()
        defer {
            Platform.close(b)
        }
        try Platform.setNonBlocking(a)
        let connection = FramedConnection(a, maximumPayload: 1 << 20)
        let small = try (0..<5).map { i in try Message.releaseFrame(callID: UInt64(i)) }
        let large = try Frame.encode(.fatal) { $0.write(string: String(repeating: "y", count: 70_000)) }
        for frame in small[0..<3] + [large] + small[3...] { connection.queue(frame) }
        #expect(connection.hasQueuedFrames)
        connection.coalesceSmallFrames()
        #expect(
            connection.queuedBufferSizes == [3 * small[0].count, large.count, small[3].count, small[4].count],
            "the three small frames ahead of the large one are joined into one write")
        try connection.flush()
        #expect(!connection.hasQueuedFrames, "a socket pair's buffer takes it all")
        Platform.close(a)  // the reader sees end of file after the frames

        var assembler = FrameAssembler(maximumPayload: 1 << 20)
        var frames: [Frame] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { raw in
                try Platform.read(b, into: raw.baseAddress!, count: raw.count)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            while let frame = try assembler.next() { frames.append(frame) }
        }
        let expected = small[0..<3] + [large] + small[3...]
        #expect(frames.count == expected.count)
        #expect(
            frames.map { [$0.kind.rawValue] + $0.payload } == expected.map { [$0[3]] + Array($0[Frame.headerSize...]) })
    }

    @Test("frames come out whole, whatever pieces the bytes arrive in")
    func reassembly() throws {
        let a = try Message.releaseFrame(callID: 7)
        let b = try Frame.encode(.fatal) { $0.write(string: String(repeating: "x", count: 100_000)) }
        let stream = a + b + a
        for pieceSize in [1, 3, 8, 1000, stream.count] {
            var assembler = FrameAssembler()
            var frames: [Frame] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + pieceSize, stream.count)
                stream[offset..<end].withUnsafeBytes { assembler.append($0) }
                offset = end
                while let frame = try assembler.next() { frames.append(frame) }
            }
            #expect(frames.map(\.kind) == [.release, .fatal, .release])
            #expect(frames[1].payload == Array(b[Frame.headerSize...]))
            #expect(assembler.bufferedByteCount == 0)
        }
    }

    @Test("a large frame's payload can be read straight into its array, in pieces, between small frames")
    func directFill() throws {
        let small = try Message.releaseFrame(callID: 7)
        let large = try Frame.encode(.fatal) { w in
            w.write(contentsOf: (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        }
        let stream = small + large + small + large
        for pieceSize in [5, 4096, 65_536, 100_000, stream.count] {
            var assembler = FrameAssembler(readsLargeFramesDirectly: true)
            var frames: [Frame] = []
            var offset = 0
            var directReads = 0
            while offset < stream.count {
                // As a reader does: straight into the payload when the assembler asks, else
                // into a scratch buffer that is appended.
                let filled = assembler.fillDirectly { target in
                    let n = min(target.count, pieceSize, stream.count - offset)
                    stream[offset..<(offset + n)].withUnsafeBytes { target.copyMemory(from: $0) }
                    return n
                }
                if let filled {
                    offset += filled ?? 0
                    directReads += 1
                } else {
                    let end = min(offset + pieceSize, stream.count)
                    stream[offset..<end].withUnsafeBytes { assembler.append($0) }
                    offset = end
                }
                while var frame = try assembler.next() {
                    frames.append(frame)
                    // As the worker does: the second large frame reuses the first's array.
                    if frame.kind == .fatal { assembler.recycle(&frame.payload) }
                }
            }
            #expect(frames.map(\.kind) == [.release, .fatal, .release, .fatal])
            #expect(frames[1].payload == Array(large[Frame.headerSize...]))
            #expect(frames[3].payload == Array(large[Frame.headerSize...]))
            #expect(assembler.bufferedByteCount == 0)
            if pieceSize < 100_000 { #expect(directReads > 0, "piece size \(pieceSize)") }
        }
    }

    @Test("a length above the limit is refused before anything is allocated")
    func oversizedLength() {
        var assembler = FrameAssembler(maximumPayload: 1024)
        header(length: UInt32.max).withUnsafeBytes { assembler.append($0) }
        #expect {
            _ = try assembler.next()
        } throws: { error in
            let error = error as! MultiprocessingError
            return error.code == .frameTooLarge
                && error.message
                    == "the peer sent a result frame of 4294967295 bytes, above this connection's limit of 1024 bytes; if your items or results are really this large, raise ProcessPool.Options.maximumFrameBytes"
        }
    }

    @Test("a wrong version is a protocol mismatch")
    func wrongVersion() {
        var assembler = FrameAssembler()
        header(version: 9, length: 0).withUnsafeBytes { assembler.append($0) }
        #expect {
            _ = try assembler.next()
        } throws: { error in
            let error = error as! MultiprocessingError
            return error.code == .protocolMismatch
                && error.message
                    == "the peer speaks wire protocol version 9, this program speaks \(Frame.protocolVersion): both ends must be the same build of the program"
        }
    }

    @Test("bad magic and unknown kinds are malformed frames")
    func garbage() {
        for bytes in [
            header(magic: (0x47, 0x45), length: 0), header(kind: 200, length: 0), Array("GET / HTTP/1.1\r\n".utf8),
        ] {
            var assembler = FrameAssembler()
            bytes.withUnsafeBytes { assembler.append($0) }
            #expect(throws: MultiprocessingError.self) { _ = try assembler.next() }
        }
    }

    @Test("message headers round-trip, and truncated ones are errors")
    func messages() throws {
        let task = Message.Task(callID: 3, chunkID: 99, firstIndex: 123_456, count: 10)
        var writer = ByteWriter()
        task.write(to: &writer)
        let bytes = writer.bytes
        let decoded = try bytes.withUnsafeBytes { raw throws -> Message.Task in
            var reader = ByteReader(raw)
            return try Message.Task(&reader)
        }
        #expect(decoded == task)
        for cut in 0..<bytes.count {
            bytes[0..<cut].withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                #expect(throws: MultiprocessingError.self) { _ = try Message.Task(&reader) }
            }
        }
    }
}

/// A real worker process (the fixture, started in worker mode by hand) fed bad frames:
/// it must report the error on its channel and exit, never crash or hang.
@Suite("Worker against malformed frames", .timeLimit(.minutes(1)))
struct WorkerProtocolTests {
    struct Worker {
        let pid: Int32
        let channel: Int32
    }

    func startWorker(maximumPayload: Int = 4096) throws -> Worker {
        let (channel, childChannel) = try Platform.socketPair()
        defer { Platform.close(childChannel) }
        let settings = WorkerMode.Settings(parentPID: getpid(), slot: 0, maximumPayload: maximumPayload)
        let pid = try Platform.spawn(
            executable: FixtureProcess.executable, arguments: ["mp-fixture", "apply"],
            environment: Platform.environmentStrings() + [
                "\(WorkerMode.environmentVariable)=\(settings.environmentValue)"
            ],
            descriptors: [(childChannel, WorkerMode.channelDescriptor)])
        return Worker(pid: pid, channel: channel)
    }

    /// Reads frames until end of file (with a deadline), returning them.
    func readFrames(_ fd: Int32, timeout: Double = 10) throws -> [Frame] {
        var assembler = FrameAssembler()
        var frames: [Frame] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else { continue }
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return frames }
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            while let frame = try assembler.next() { frames.append(frame) }
        }
        Issue.record("timed out waiting for the worker to close its channel")
        return frames
    }

    func exitStatus(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        for _ in 0..<500 {
            if waitpid(pid, &status, WNOHANG) == pid { return (status >> 8) & 0xff }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        return -1
    }

    func expectFatal(after bytes: [UInt8], code: MultiprocessingError.Code, messageContains text: String) throws {
        let worker = try startWorker()
        defer { Platform.close(worker.channel) }
        bytes.withUnsafeBytes { _ = write(worker.channel, $0.baseAddress, $0.count) }
        let frames = try readFrames(worker.channel)
        #expect(frames.first?.kind == .hello)
        let fatal = try #require(frames.last)
        #expect(fatal.kind == .fatal)
        let failure = try fatal.payload.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return try Message.Failure(&reader, kind: .fatal)
        }
        #expect(failure.code == code.description)
        #expect(failure.message.contains(text), "\(failure.message)")
        #expect(exitStatus(worker.pid) == 1)
    }

    @Test func badVersionIsRefused() throws {
        try expectFatal(
            after: [0x4D, 0x50, 7, 3, 0, 0, 0, 0], code: .protocolMismatch,
            messageContains: "the peer speaks wire protocol version 7, this program speaks \(Frame.protocolVersion)")
    }

    @Test func oversizedFrameIsRefused() throws {
        try expectFatal(
            after: [0x4D, 0x50, Frame.protocolVersion, 3, 0xFF, 0xFF, 0xFF, 0x7F], code: .frameTooLarge,
            messageContains: "frame of 2147483647 bytes, above this connection's limit of 4096 bytes")
    }

    @Test func garbageIsRefused() throws {
        try expectFatal(after: Array("hello worker\n".utf8), code: .malformedFrame, messageContains: "bad magic")
    }

    @Test("a truncated task (its header cut short) is refused")
    func truncatedTask() throws {
        let frame = try Frame.encode(.task) { $0.write(varint: 1) }
        try expectFatal(after: frame, code: .decodingFailed, messageContains: "ended early")
    }

    @Test("closing the channel is an orderly exit")
    func orderlyExit() throws {
        let worker = try startWorker()
        var buffer = [UInt8](repeating: 0, count: 1024)
        _ = read(worker.channel, &buffer, buffer.count)  // the hello
        Platform.close(worker.channel)
        #expect(exitStatus(worker.pid) == 0)
    }
}
