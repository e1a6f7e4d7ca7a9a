#ifdef __linux__

// pipe2 and F_DUPFD_CLOEXEC.
#define _GNU_SOURCE

#include "CTapedeckSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Between fork and execve the child of a multithreaded process may only make async-signal-safe calls: another
// thread may have held a lock (malloc's, say) at the moment of the fork, and it is never released in the child.
// Everything the child needs is therefore prepared by the parent, and the child only calls the kernel.

/// In the child: tells the parent why it could not start, and exits as a shell does for a command it cannot run.
static void report_and_exit(int report, int error) {
    while (write(report, &error, sizeof error) < 0 && errno == EINTR) {
    }
    _exit(127);
}

/// In the child: closes every descriptor from 3 on except `keep`.
static void close_descriptors(int keep, int limit) {
#ifdef SYS_close_range
    if ((keep == 3 || syscall(SYS_close_range, 3, keep - 1, 0) == 0)
        && syscall(SYS_close_range, keep + 1, ~0U, 0) == 0) {
        return;
    }
#endif
    // A kernel older than close_range (5.9): one close per possible descriptor.
    for (int descriptor = 3; descriptor < limit; descriptor++) {
        if (descriptor != keep) close(descriptor);
    }
}

int tapedeck_spawn(
    const char *path,
    char *const argv[],
    char *const envp[],
    const tapedeck_redirection *redirections,
    int redirection_count,
    const int *default_signals,
    int default_signal_count,
    int die_with_parent,
    pid_t *pid
) {
    // The child reports a failed redirection or execve through this pipe; a successful execve closes it
    // (close-on-exec), so the parent reads either an errno or end of file.
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    if (report[1] < 3) {
        // Kept above the standard descriptors, which the redirections overwrite.
        int moved = fcntl(report[1], F_DUPFD_CLOEXEC, 3);
        int error = errno;
        close(report[1]);
        if (moved < 0) {
            close(report[0]);
            return error;
        }
        report[1] = moved;
    }
    int limit = 1 << 20;
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY && files.rlim_cur < (rlim_t)limit) {
        limit = (int)files.rlim_cur;
    }
    struct sigaction default_action;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigset_t empty;
    sigemptyset(&empty);
    pid_t parent = getpid();

    // Every signal blocked across the fork: until the child has reset the dispositions, a signal would run one of
    // our handlers in the child (the one of `tapedeck run` passes signals on to the command's pid).
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t child = fork();
    if (child == 0) {
        for (int index = 0; index < default_signal_count; index++) {
            sigaction(default_signals[index], &default_action, NULL);
        }
        for (int index = 0; index < redirection_count; index++) {
            const tapedeck_redirection *redirection = &redirections[index];
            if (redirection->path != NULL) {
                int opened = open(redirection->path, redirection->flags, 0644);
                if (opened < 0) report_and_exit(report[1], errno);
                if (opened != redirection->descriptor) {
                    if (dup2(opened, redirection->descriptor) < 0) report_and_exit(report[1], errno);
                    close(opened);
                }
            } else if (dup2(redirection->source, redirection->descriptor) < 0) {
                report_and_exit(report[1], errno);
            }
        }
        close_descriptors(report[1], limit);
        if (die_with_parent) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) report_and_exit(report[1], errno);
            // The parent may have died before the prctl, and then the signal will never come: we were adopted.
            if (getppid() != parent) _exit(127);
        }
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(path, argv, envp);
        report_and_exit(report[1], errno);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    if (child < 0) {
        close(report[0]);
        return fork_error;
    }

    int exec_error = 0;
    ssize_t count;
    do {
        count = read(report[0], &exec_error, sizeof exec_error);
    } while (count < 0 && errno == EINTR);
    close(report[0]);
    if (count == sizeof exec_error) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        return exec_error;
    }
    *pid = child;
    return 0;
}

#endif
