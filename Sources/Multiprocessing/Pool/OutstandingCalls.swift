import Synchronization

/// The calls a pool has taken and not finished, counted so that
/// ``ProcessPool/closeAndJoin()`` can stop new work and wait for the rest.
///
/// A call counts from the moment it is taken (`map` and the streams when they start their
/// call; `applyAsync` when it is submitted, before its task runs) until the supervisor
/// forgets it: its results were all delivered, or it failed, or its consumer stopped.
final class OutstandingCalls: Sendable {
    private struct State {
        var count = 0
        var joining = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Whether ``join()`` has begun: new calls are refused.
    var isJoining: Bool { state.withLock { $0.joining } }

    /// Counts a call in; returns false (counting nothing) when joining has begun, unless
    /// the call was already admitted before it did (an `applyAsync` whose task runs now).
    func enter(admitted: Bool = false) -> Bool {
        state.withLock { state in
            if state.joining && !admitted { return false }
            state.count += 1
            return true
        }
    }

    /// Counts a call out; the last one out wakes the joiners.
    func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count -= 1
            guard state.count == 0 else { return [] }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Refuses new calls from now on and returns once none is outstanding, or at once
    /// when the calling task is cancelled.
    func join() async {
        let id = state.withLock { state -> Int in
            state.joining = true
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state -> Bool in
                    // Checked under the lock: a cancellation handler that ran before this
                    // found no waiter to resume, and one that runs after finds this one.
                    if state.count == 0 || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
