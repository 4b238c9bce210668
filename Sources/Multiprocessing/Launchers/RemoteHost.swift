#if os(Linux)
/// The coordinator's view of one worker host (one node of a multi-node pool): its
/// authenticated control connection, what it said about itself, and its slots.
/// Lives on the event loop thread.
final class RemoteHost {
    let hello: ClusterMessage.HostHello
    let connection: FramedConnection
    /// The pool's worker slots this host's workers fill.
    var slots: [Int] = []
    /// The connection ended: the host, and every worker it started, are gone.
    var lost = false

    init(hello: ClusterMessage.HostHello, descriptor: Int32) {
        self.hello = hello
        connection = FramedConnection(descriptor, maximumPayload: 1 << 20)
    }
}

/// The coordinator's side of a multi-node pool: the listener worker hosts and their
/// workers connect to, the pool's secret, the `srun` step, and the hosts that joined.
final class ClusterState {
    /// A worker the coordinator asked a host to start, which has not connected yet.
    struct PendingWorker {
        let slot: Int
        let host: RemoteHost
        let timer: UInt64
    }

    let secret = ClusterSecret.random()
    let listener: Int32
    let port: UInt16
    let expectedHosts: Int
    var listenerToken: UInt64 = 0
    var step: SlurmStep?
    var stepToken: UInt64 = 0
    var stepEnded = false
    var hosts: [RemoteHost] = []
    var pending: [UInt64: PendingWorker] = [:]
    var nextWorkerID: UInt64 = 1

    init(expectedHosts: Int) throws {
        (listener, port) = try Platform.listenTCP()
        self.expectedHosts = expectedHosts
    }
}
#endif
