import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waiting on a few descriptors at once, and the handlers that turn signals into bytes on
/// a descriptor (for the worker host, which runs no event loop).
extension Platform {
    /// Waits until one of `descriptors` is readable, has hung up or failed, or until
    /// `timeoutMilliseconds` have passed (-1: no limit). Returns, for each descriptor in
    /// order, whether it is ready (all false when the time ran out). A wait interrupted by
    /// a signal (EINTR) is waited again, for the whole timeout.
    /// - Throws: ``MultiprocessingError/Code/systemCallFailed`` with the `poll` errno as its cause.
    static func pollReadable(_ descriptors: [Int32], timeoutMilliseconds: Int32) throws -> [Bool] {
        var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        try call("poll") { poll(&entries, nfds_t(entries.count), timeoutMilliseconds) }
        return entries.map { $0.revents != 0 }
    }

    /// Makes SIGTERM, SIGINT and SIGUSR1 write their number as one byte to `descriptor` (a
    /// non-blocking pipe or socket end); returns whether the handlers were installed.
    static func forwardTerminationSignals(to descriptor: Int32) -> Bool {
        mp_install_termination_handlers(descriptor) == 0 && mp_install_usr1_handler(descriptor) == 0
    }
}
