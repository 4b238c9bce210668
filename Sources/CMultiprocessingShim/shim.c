#define _GNU_SOURCE
#include "CMultiprocessingShim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <link.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#endif

int mp_errno(void) { return errno; }

#if defined(__linux__)

static int read_mask(cpu_set_t **set, size_t *size, int *ncpus) {
    // Grow the mask until the kernel accepts it (machines with more than 1024 CPUs).
    for (int n = 1024; n <= (1 << 20); n *= 2) {
        cpu_set_t *s = CPU_ALLOC(n);
        if (!s) { errno = ENOMEM; return -1; }
        size_t sz = CPU_ALLOC_SIZE(n);
        CPU_ZERO_S(sz, s);
        if (sched_getaffinity(0, sz, s) == 0) {
            *set = s; *size = sz; *ncpus = n;
            return 0;
        }
        int e = errno;
        CPU_FREE(s);
        if (e != EINVAL) { errno = e; return -1; }
    }
    errno = EINVAL;
    return -1;
}

int mp_affinity_cpu_count(void) {
    cpu_set_t *s; size_t sz; int n;
    if (read_mask(&s, &sz, &n) != 0) return -1;
    int count = CPU_COUNT_S(sz, s);
    CPU_FREE(s);
    return count;
}

int mp_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

int mp_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int mp_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int mp_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

short mp_poll_read_hangup(void) { return POLLRDHUP; }

int mp_pidfd_reap(int pidfd, int nohang, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int flags = WEXITED | (nohang ? WNOHANG : 0);
    if (waitid(P_PIDFD, (id_t)pidfd, &info, flags) != 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code;
    *status = info.si_status;
    return 1;
}

int mp_spawn_file_actions_addclosefrom(void *actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
#else
    (void)actions; (void)from;
    return ENOSYS;
#endif
}

struct build_id_search { uint8_t *out; int capacity; int length; };

static int find_build_id(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct build_id_search *search = data;
    // The first object dl_iterate_phdr reports is the main executable.
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
            size_t name_size = (note->n_namesz + 3) & ~(size_t)3;
            size_t desc_size = (note->n_descsz + 3) & ~(size_t)3;
            const uint8_t *name = p + sizeof(ElfW(Nhdr));
            const uint8_t *desc = name + name_size;
            if (desc + note->n_descsz > end) break;
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                int n = (int)note->n_descsz < search->capacity ? (int)note->n_descsz : search->capacity;
                memcpy(search->out, desc, (size_t)n);
                search->length = n;
                return 1;
            }
            p = desc + desc_size;
        }
    }
    return 1;  // only the main executable is of interest
}

int mp_executable_build_id(uint8_t *out, int capacity) {
    struct build_id_search search = { out, capacity, 0 };
    dl_iterate_phdr(find_build_id, &search);
    return search.length;
}

int mp_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = token;
    int real_op = op == 1 ? EPOLL_CTL_ADD : op == 2 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    return epoll_ctl(epfd, real_op, fd, &event);
}

int mp_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    int n = epoll_wait(epfd, ready, capacity, timeout_ms);
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}

int mp_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int mp_gettid(void) { return (int)syscall(SYS_gettid); }

#else  // not Linux: the calls that have no portable equivalent report ENOSYS

int mp_affinity_cpu_count(void) { errno = ENOSYS; return -1; }
int mp_set_parent_death_signal(int signal) { (void)signal; errno = ENOSYS; return -1; }
int mp_pidfd_open(pid_t pid) { (void)pid; errno = ENOSYS; return -1; }
int mp_memfd_create(const char *name) { (void)name; errno = ENOSYS; return -1; }
int mp_pipe_cloexec(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}
short mp_poll_read_hangup(void) { return 0; }
int mp_pidfd_reap(int pidfd, int nohang, int *code, int *status) {
    (void)pidfd; (void)nohang; (void)code; (void)status; errno = ENOSYS; return -1;
}
int mp_spawn_file_actions_addclosefrom(void *actions, int from) { (void)actions; (void)from; return ENOSYS; }
int mp_executable_build_id(uint8_t *out, int capacity) { (void)out; (void)capacity; return 0; }
int mp_epoll_create(void) { errno = ENOSYS; return -1; }
int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    (void)epfd; (void)op; (void)fd; (void)events; (void)token; errno = ENOSYS; return -1;
}
int mp_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    (void)epfd; (void)tokens; (void)events; (void)capacity; (void)timeout_ms; errno = ENOSYS; return -1;
}
int mp_eventfd(void) { errno = ENOSYS; return -1; }
int mp_gettid(void) { errno = ENOSYS; return -1; }

#endif

void mp_flush_stdio(void) {
    fflush(stdout);
    fflush(stderr);
}

void mp_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

void mp_set_thread_name(const char *name) {
#if defined(__linux__)
    char truncated[16];
    strncpy(truncated, name, 15);
    truncated[15] = 0;
    prctl(PR_SET_NAME, truncated, 0, 0, 0);
#else
    (void)name;
#endif
}

static volatile int mp_signal_fd = -1;
static struct sigaction mp_previous_int;
static struct sigaction mp_previous_term;
static int mp_handlers_installed = 0;

static void mp_termination_handler(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    int fd = mp_signal_fd;
    if (fd >= 0) (void)write(fd, &byte, 1);
    errno = saved;
}

int mp_install_termination_handlers(int fd) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = mp_termination_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    mp_signal_fd = fd;
    if (mp_handlers_installed) return 0;
    if (sigaction(SIGINT, &action, &mp_previous_int) != 0) return -1;
    if (sigaction(SIGTERM, &action, &mp_previous_term) != 0) {
        sigaction(SIGINT, &mp_previous_int, NULL);
        return -1;
    }
    mp_handlers_installed = 1;
    return 0;
}

int mp_install_usr1_handler(int fd) {
    /* The same handler and pipe as SIGINT/SIGTERM: the watching thread reads the number. */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = mp_termination_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    mp_signal_fd = fd;
    return sigaction(SIGUSR1, &action, NULL);
}

int mp_ignore_usr1(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGUSR1, &action, NULL) != 0) return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void mp_restore_termination_handlers(void) {
    if (!mp_handlers_installed) return;
    sigaction(SIGINT, &mp_previous_int, NULL);
    sigaction(SIGTERM, &mp_previous_term, NULL);
    mp_handlers_installed = 0;
}

#include <fcntl.h>
#include <sys/socket.h>

int mp_accept_cloexec(int fd, void *address, unsigned int *length) {
#ifdef __linux__
    return accept4(fd, (struct sockaddr *)address, (socklen_t *)length, SOCK_CLOEXEC);
#else
    int result = accept(fd, (struct sockaddr *)address, (socklen_t *)length);
    if (result >= 0) fcntl(result, F_SETFD, FD_CLOEXEC);
    return result;
#endif
}

#include <pthread.h>

/// The lowest usable address of this thread's stack: 0 until looked up, 1 when unknown.
static __thread uintptr_t mp_stack_low = 0;

size_t mp_stack_remaining(void) {
    char marker;
    uintptr_t here = (uintptr_t)&marker;
    if (mp_stack_low == 0) {
        mp_stack_low = 1;
#if defined(__APPLE__)
        pthread_t self = pthread_self();
        mp_stack_low = (uintptr_t)pthread_get_stackaddr_np(self) - pthread_get_stacksize_np(self);
#elif defined(__linux__)
        pthread_attr_t attributes;
        if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
            void *low = NULL;
            size_t size = 0;
            size_t guard = 0;
            if (pthread_attr_getstack(&attributes, &low, &size) == 0 && low != NULL) {
                pthread_attr_getguardsize(&attributes, &guard);
                mp_stack_low = (uintptr_t)low + guard;
            }
            pthread_attr_destroy(&attributes);
        }
#endif
    }
    if (mp_stack_low == 1) return SIZE_MAX;
    return here > mp_stack_low ? here - mp_stack_low : 0;
}

const char *mp_signal_abbreviation(int signo) {
    switch (signo) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGCHLD: return "SIGCHLD";
    case SIGCONT: return "SIGCONT";
    case SIGSTOP: return "SIGSTOP";
    case SIGTSTP: return "SIGTSTP";
    case SIGTTIN: return "SIGTTIN";
    case SIGTTOU: return "SIGTTOU";
    case SIGURG: return "SIGURG";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGVTALRM: return "SIGVTALRM";
    case SIGPROF: return "SIGPROF";
    case SIGWINCH: return "SIGWINCH";
    case SIGSYS: return "SIGSYS";
    default: return NULL;
    }
}
