import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let sysRead = Glibc.read
private let sysWrite = Glibc.write
private let sysClose = Glibc.close
private let socketStream = Int32(SOCK_STREAM.rawValue)
#else
private let sysRead = Darwin.read
private let sysWrite = Darwin.write
private let sysClose = Darwin.close
private let socketStream = SOCK_STREAM
#endif

/// File-descriptor operations, each through ``Platform/call(_:_:)``.
extension Platform {
    /// A connected pair of Unix stream sockets, both close-on-exec.
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #if canImport(Glibc)
        try call("socketpair") { socketpair(AF_UNIX, socketStream | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        #else
        try call("socketpair") { socketpair(AF_UNIX, socketStream, 0, &fds) }
        try setCloseOnExec(fds[0])
        try setCloseOnExec(fds[1])
        #endif
        return (fds[0], fds[1])
    }

    /// A pipe, both ends close-on-exec: `(read, write)`.
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try call("pipe2") { mp_pipe_cloexec(&fds) }
        return (fds[0], fds[1])
    }

    /// Asks for send buffers of `bytes` on a socket (the kernel caps the request at
    /// `net.core.wmem_max`; failure leaves the default, so it is ignored). A large frame
    /// then crosses a socket pair in a few writes instead of one per default-sized buffer.
    static func requestSendBuffer(_ fd: Int32, bytes: Int32) {
        var size = bytes
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    static func setCloseOnExec(_ fd: Int32) throws {
        let flags = try call("fcntl(F_GETFD)") { fcntl(fd, F_GETFD) }
        try call("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }

    static func setNonBlocking(_ fd: Int32) throws {
        let flags = try call("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try call("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Duplicates `fd` to the lowest free descriptor at or above `minimum`, close-on-exec.
    static func duplicate(_ fd: Int32, atLeast minimum: Int32) throws -> Int32 {
        try call("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, minimum) }
    }

    /// Closes a descriptor. EINTR is not retried (on Linux the descriptor is gone anyway).
    static func close(_ fd: Int32) {
        _ = sysClose(fd)
    }

    /// Reads up to `count` bytes; returns 0 at end of file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        try call("read") { sysRead(fd, buffer, count) }
    }

    /// Reads without blocking; `nil` when no data is ready, 0 at end of file.
    static func readNonBlocking(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int? {
        try callNonBlocking("read") { sysRead(fd, buffer, count) }
    }

    /// Writes all of `bytes`, blocking as needed.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = try call("write") { sysWrite(fd, bytes.baseAddress! + offset, bytes.count - offset) }
            offset += n
        }
    }

    /// Writes what the socket takes now; returns the number of bytes written (0 if none).
    static func writeNonBlocking(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws -> Int {
        guard bytes.count > 0 else { return 0 }
        return try callNonBlocking("write") { sysWrite(fd, bytes.baseAddress!, bytes.count) } ?? 0
    }

    /// Waits up to `milliseconds` for the other end of a stream socket to close (POLLRDHUP
    /// on Linux; POLLHUP and POLLERR are always reported) without reading from it; data
    /// waiting to be read does not wake it. Returns `true` when the end has closed (or the
    /// descriptor is no longer valid), `false` when the time ran out or a signal came.
    static func waitForHangUp(_ fd: Int32, milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: mp_poll_read_hangup(), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    /// A new anonymous shared-memory file of `size` bytes (Linux `memfd_create`,
    /// close-on-exec), for a page that a parent and its worker both map.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` (ENOSYS off Linux).
    static func createSharedMemory(name: String, size: Int) throws -> Int32 {
        let fd = try call("memfd_create") { mp_memfd_create(name) }
        do {
            try call("ftruncate") { ftruncate(fd, off_t(size)) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Maps `size` bytes of a shared-memory file for reading and writing, shared with every
    /// other process that maps it. The mapping outlives the descriptor.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed``.
    static func mapShared(_ fd: Int32, size: Int) throws -> UnsafeMutableRawPointer {
        guard let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            throw systemError("mmap", mp_errno())
        }
        return raw
    }

    /// Unmaps what ``mapShared(_:size:)`` mapped.
    static func unmap(_ address: UnsafeMutableRawPointer, size: Int) {
        _ = munmap(address, size)
    }

    /// Whether an error says a blocking read or write ran past its socket timeout (EAGAIN).
    static func isTimeout(_ error: MultiprocessingError) -> Bool {
        guard let cause = error.underlying as? SystemCallError else { return false }
        return cause.errno == EAGAIN || cause.errno == EWOULDBLOCK
    }

    /// Whether an error says this process has as many descriptors open as its limit allows (EMFILE).
    static func isOutOfDescriptors(_ error: MultiprocessingError) -> Bool {
        (error.underlying as? SystemCallError)?.errno == EMFILE
    }

    /// Whether an error says the other end of a socket went away (EPIPE, ECONNRESET).
    static func isPeerGone(_ error: MultiprocessingError) -> Bool {
        guard let cause = error.underlying as? SystemCallError else { return false }
        return cause.errno == EPIPE || cause.errno == ECONNRESET
    }
}
