// The few C calls that Glibc's Swift module does not expose, or exposes only as macros.
// Each is a thin wrapper; errors are reported as in C (return -1 and set errno).
#ifndef C_MULTIPROCESSING_SHIM_H
#define C_MULTIPROCESSING_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Number of CPUs in this process's affinity mask, or -1 with errno set.
int mp_affinity_cpu_count(void);

/// Linux: asks the kernel to send `signal` to this process when its parent thread exits.
/// Returns 0, or -1 with errno set (and ENOSYS elsewhere).
int mp_set_parent_death_signal(int signal);

/// Linux: opens a pidfd for `pid` (close-on-exec); -1 with errno set elsewhere.
int mp_pidfd_open(pid_t pid);

/// Linux: memfd_create(name, MFD_CLOEXEC); -1 with errno set elsewhere.
int mp_memfd_create(const char *name);

/// A pipe whose two ends are close-on-exec (pipe2 with O_CLOEXEC on Linux; elsewhere
/// pipe, then FD_CLOEXEC on each end). Returns 0, or -1 with errno set.
int mp_pipe_cloexec(int fds[2]);

/// poll's POLLRDHUP (the peer closed its end of a stream socket) on Linux, else 0.
short mp_poll_read_hangup(void);

/// Linux: reaps the process behind `pidfd` if it has exited (WNOHANG when `nohang`).
/// Returns 1 and fills `code`/`status` (siginfo's si_code / si_status) when it reaped,
/// 0 when the process is still running, -1 with errno set on error.
int mp_pidfd_reap(int pidfd, int nohang, int *code, int *status);

/// posix_spawn_file_actions_addclosefrom_np where available (glibc 2.34+), else ENOSYS.
int mp_spawn_file_actions_addclosefrom(void *actions, int from);

/// The GNU build id of the main executable (up to `capacity` bytes); returns its length,
/// 0 when the executable has none.
int mp_executable_build_id(uint8_t *out, int capacity);

/// Whether stdout's buffer holds bytes not yet written. Checked after every item a worker
/// runs, so on glibc it is two loads inlined into the caller (what __fpending computes,
/// without the call); elsewhere it always says yes.
#if defined(__GLIBC__)
static inline int mp_stdout_has_pending(void) { return stdout->_IO_write_ptr > stdout->_IO_write_base; }
#else
static inline int mp_stdout_has_pending(void) { return 1; }
#endif

/// Flushes stdout and stderr.
void mp_flush_stdio(void);

/// Makes stdout line-buffered (a worker's prints then reach a Slurm output file whole).
void mp_stdout_line_buffered(void);

/// Linux: epoll_create1(EPOLL_CLOEXEC).
int mp_epoll_create(void);

/// Linux: epoll_ctl with the event's data set to `token`. `op`: 1 add, 2 delete, 3 modify.
int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);

/// Linux: epoll_wait, unpacking each event into `tokens[i]` and `events[i]`.
int mp_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

/// Linux: eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int mp_eventfd(void);
/// The calling thread's kernel id (`gettid`); -1 (ENOSYS) off Linux.
int mp_gettid(void);

/// Names the calling thread (Linux: up to 15 bytes, shown by `ps -L`, `top -H`).
void mp_set_thread_name(const char *name);

/// Installs handlers for SIGINT and SIGTERM (sigaction, SA_RESTART) that write the
/// signal's number, as one byte, to `fd` (a self-pipe: the only async-signal-safe way
/// to hand a signal to a thread). The previous dispositions are saved. Returns 0 or -1.
int mp_install_termination_handlers(int fd);

/// Installs a SIGUSR1 handler that writes the signal number to `fd` (Slurm's warning
/// before the time limit, for requeueing). Stays installed for the process's life.
int mp_install_usr1_handler(int fd);

/// Ignores SIGUSR1, then unblocks it (workers are started with it blocked, so that a
/// SIGUSR1 arriving before this runs is not fatal: it is discarded here).
int mp_ignore_usr1(void);

/// Restores the dispositions saved by mp_install_termination_handlers.
void mp_restore_termination_handlers(void);

/// accept4(fd, address, length, SOCK_CLOEXEC) where available, else accept + FD_CLOEXEC.
int mp_accept_cloexec(int fd, void *address, unsigned int *length);

/// The calling thread's errno.
int mp_errno(void);

/// The conventional name of a signal number on this system ("SIGKILL"), or NULL for a
/// number that has none here. A table, no system call.
const char *mp_signal_abbreviation(int signo);

/// How many bytes of stack the calling thread has left below the caller's frame, or
/// SIZE_MAX when its bounds are unknown. The thread's stack bounds are looked up once
/// per thread (pthread_getattr_np; on the main thread that reads /proc/self/maps), then
/// each call costs a thread-local load.
size_t mp_stack_remaining(void);

#ifdef __cplusplus
}
#endif

#endif
