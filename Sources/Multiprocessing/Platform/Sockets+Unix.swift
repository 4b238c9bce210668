import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let streamType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
#else
private let streamType = SOCK_STREAM
#endif

/// TCP for workers on other nodes: a listener on an ephemeral port, connects with a
/// deadline, and the node's own IPv4 addresses (to tell worker hosts where to connect).
extension Platform {
    /// Listens on every IPv4 address of this node, on a port the kernel picks. Returns
    /// the listening descriptor (close-on-exec, non-blocking) and the port.
    static func listenTCP() throws -> (descriptor: Int32, port: UInt16) {
        let fd = try call("socket(AF_INET)") { socket(AF_INET, streamType, 0) }
        do {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr = in_addr(s_addr: INADDR_ANY)
            _ = try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    try call("bind") { bind(fd, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            try call("listen") { listen(fd, 128) }
            try setNonBlocking(fd)
            var bound = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = try withUnsafeMutablePointer(to: &bound) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    try call("getsockname") { getsockname(fd, raw, &length) }
                }
            }
            return (fd, UInt16(bigEndian: bound.sin_port))
        } catch {
            close(fd)
            throw error
        }
    }

    /// Accepts one waiting connection (close-on-exec, blocking); `nil` when none waits.
    /// Also returns the peer's address as text (`a.b.c.d:port`).
    static func acceptTCP(_ listener: Int32) throws -> (descriptor: Int32, peer: String)? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try callNonBlocking("accept4") { mp_accept_cloexec(listener, raw, &length) }
            }
        }
        guard let fd else { return nil }
        try? setNoDelay(fd)
        try? setKeepAlive(fd)
        return (fd, describe(address))
    }

    /// Connects to `host:port` (an IPv4 address in dotted form), giving up after
    /// `timeoutMilliseconds`. Returns a blocking, close-on-exec socket with TCP_NODELAY.
    static func connectTCP(host: String, port: UInt16, timeoutMilliseconds: Int32) throws -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw MultiprocessingError(.invalidArgument, "'\(host)' is not an IPv4 address")
        }
        let fd = try call("socket(AF_INET)") { socket(AF_INET, streamType, 0) }
        do {
            try setNonBlocking(fd)
            let started = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    connect(fd, raw, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if started != 0 {
                let code = mp_errno()
                guard code == EINPROGRESS || code == EINTR else {
                    throw systemError("connect to \(host):\(port)", code)
                }
                var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = try call("poll") { poll(&entry, 1, timeoutMilliseconds) }
                guard ready > 0 else { throw systemError("connect to \(host):\(port)", ETIMEDOUT) }
                var failure: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                try call("getsockopt(SO_ERROR)") { getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) }
                if failure != 0 { throw systemError("connect to \(host):\(port)", failure) }
            }
            try setBlocking(fd)
            try setNoDelay(fd)
            try? setKeepAlive(fd)
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// Turns off Nagle's algorithm: frames go out at once (latency matters more than
    /// packet count here).
    static func setNoDelay(_ fd: Int32) throws {
        var on: Int32 = 1
        try call("setsockopt(TCP_NODELAY)") {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Makes blocking reads and writes on `fd` fail with EAGAIN after `milliseconds` (0: never).
    static func setIOTimeout(_ fd: Int32, milliseconds: Int) throws {
        var limit = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        let size = socklen_t(MemoryLayout<timeval>.size)
        try call("setsockopt(SO_RCVTIMEO)") { setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, size) }
        try call("setsockopt(SO_SNDTIMEO)") { setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, size) }
    }

    /// Probes an idle connection (after 10 s, every 5 s, 3 times) and gives up on one that
    /// has stopped acknowledging for 30 s: a node that vanishes without closing its
    /// connections (power loss, a network partition) is noticed in well under a minute.
    static func setKeepAlive(_ fd: Int32) throws {
        var on: Int32 = 1
        var idle: Int32 = 10
        var interval: Int32 = 5
        var count: Int32 = 3
        var unacknowledged: UInt32 = 30_000
        let size = socklen_t(MemoryLayout<Int32>.size)
        try call("setsockopt(SO_KEEPALIVE)") { setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size) }
        try call("setsockopt(TCP_KEEPIDLE)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size) }
        try call("setsockopt(TCP_KEEPINTVL)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size) }
        try call("setsockopt(TCP_KEEPCNT)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size) }
        try call("setsockopt(TCP_USER_TIMEOUT)") {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &unacknowledged, socklen_t(MemoryLayout<UInt32>.size))
        }
    }

    static func setBlocking(_ fd: Int32) throws {
        let flags = try call("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try call("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
    }

    /// Raises this process's soft limit on open descriptors to its hard limit.
    static func raiseOpenFilesLimit() {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }

    /// Interfaces whose address means "this node" on every node (container and VM bridges,
    /// virtual links): another node trying one would reach itself, not this program.
    static let nodeLocalInterfacePrefixes = [
        "docker", "br-", "virbr", "veth", "cni", "flannel", "cali", "lxc", "podman",
    ]

    /// This node's IPv4 addresses, the loopback ones last (a worker host tries them in order).
    /// Bridge addresses are left out (``nodeLocalInterfacePrefixes``).
    static func localIPv4Addresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return ["127.0.0.1"] }
        defer { freeifaddrs(list) }
        var external: [String] = []
        var loopback: [String] = []
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let raw = current.pointee.ifa_addr, Int32(raw.pointee.sa_family) == AF_INET else { continue }
            let address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            let text = describe(address, withPort: false)
            let name = current.pointee.ifa_name.map { String(cString: $0) } ?? ""
            if nodeLocalInterfacePrefixes.contains(where: { name.hasPrefix($0) }) { continue }
            if (current.pointee.ifa_flags & UInt32(IFF_LOOPBACK)) != 0 {
                loopback.append(text)
            } else if !external.contains(text) {
                external.append(text)
            }
        }
        return external + (loopback.isEmpty ? ["127.0.0.1"] : loopback)
    }

    private static func describe(_ address: sockaddr_in, withPort: Bool = true) -> String {
        var copy = address.sin_addr
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &copy, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        let host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return withPort ? "\(host):\(UInt16(bigEndian: address.sin_port))" : host
    }

    /// `count` bytes from the system's cryptographically secure generator (getrandom).
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
