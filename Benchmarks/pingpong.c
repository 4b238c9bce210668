/* The floor for one-item latency: two processes bouncing one byte over a Unix socket
 * pair, blocking reads, no busy-waiting. Prints microseconds per round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 1;
    pid_t pid = fork();
    char byte = 1;
    if (pid == 0) {
        close(fds[0]);
        while (read(fds[1], &byte, 1) == 1) {
            if (write(fds[1], &byte, 1) != 1) break;
        }
        _exit(0);
    }
    close(fds[1]);
    for (int i = 0; i < 1000; i++) {  /* warm up */
        if (write(fds[0], &byte, 1) != 1 || read(fds[0], &byte, 1) != 1) return 1;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < rounds; i++) {
        if (write(fds[0], &byte, 1) != 1 || read(fds[0], &byte, 1) != 1) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / rounds;
    printf("{\"lang\":\"c\",\"engine\":\"pingpong\",\"workload\":\"latency\",\"workers\":1,\"us_per_roundtrip\":%f}\n", us);
    return 0;
}
