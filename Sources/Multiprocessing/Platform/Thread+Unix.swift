import CMultiprocessingShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain operating-system thread, for the blocking work that must never run on the
/// Swift concurrency pool's threads (there are only as many as cores).
enum OSThread {
    private final class Box {
        let body: () -> Void
        let name: String
        init(_ name: String, _ body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts a detached thread running `body`.
    ///
    /// - Parameter stackBytes: the thread's stack size; nil for the system's default (on
    ///   Linux the `ulimit -s` size, usually 8 MiB, but 2 MiB under `ulimit -s unlimited`).
    static func start(name: String, stackBytes: Int? = nil, _ body: @escaping @Sendable () -> Void) throws {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t? = nil
        #endif
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if let stackBytes { pthread_attr_setstacksize(&attributes, stackBytes) }
        let result = pthread_create(
            &thread, &attributes,
            { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                mp_set_thread_name(box.name)
                box.body()
                return nil
            }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw Platform.systemError("pthread_create", result)
        }
        #if canImport(Glibc)
        pthread_detach(thread)
        #else
        pthread_detach(thread!)
        #endif
    }
}

extension Platform {
    /// Names the process (what `ps -o comm`, `top` and `pgrep` show), whichever thread
    /// calls it: Linux keeps the name of the main thread in `/proc/self/comm` (up to 15
    /// bytes). A program whose `main` is `async` runs `bootstrap()` on another thread, so
    /// naming the calling thread would not do.
    static func setProcessName(_ name: String) {
        #if os(Linux)
        let fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var bytes = Array(name.utf8.prefix(15))
        _ = write(fd, &bytes, bytes.count)
        #endif
    }
}

/// A mutex with a condition variable, for the few places where a dedicated thread must
/// sleep until another thread has something for it. Never used on the concurrency pool.
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a signal; the lock must be held.
    func wait() { pthread_cond_wait(condition, mutex) }
    func signal() { pthread_cond_signal(condition) }
    /// Wakes every thread waiting.
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits for a signal or until `nanoseconds` have passed; the lock must be held.
    func wait(nanoseconds: UInt64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let total = UInt64(now.tv_nsec) + nanoseconds % 1_000_000_000
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + Int(nanoseconds / 1_000_000_000) + Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        pthread_cond_timedwait(condition, mutex, &deadline)
    }
}
