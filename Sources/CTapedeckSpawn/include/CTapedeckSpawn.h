#ifndef C_TAPEDECK_SPAWN_H
#define C_TAPEDECK_SPAWN_H

#ifdef __linux__

#include <sys/types.h>

/// Where one of the child's standard descriptors goes: a file opened with `flags` when `path` is not NULL,
/// otherwise a duplicate of the child's descriptor `source`.
typedef struct {
    int descriptor;
    const char *path;
    int flags;
    int source;
} tapedeck_redirection;

/// Starts `path` as a child process with fork and execve, as posix_spawn would, and in addition, with
/// `die_with_parent`, has the kernel kill the child (SIGKILL) when the calling thread exits: a `tapedeck run`
/// killed with SIGKILL must not leave its command running.
///
/// The child gets `default_signals` back to their default dispositions and an empty signal mask, `redirections`
/// applied in order, and no descriptor beyond 0, 1 and 2.
///
/// The parent-death signal fires when the *thread* that forked exits, not the process: call this from a thread
/// that lives until the child has exited (the one that waits for it).
///
/// Returns 0 and stores the child's pid in `pid`, or returns the errno of what failed: fork, or in the child a
/// redirection or execve (the child then exits 127 and has been reaped).
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
);

#endif

#endif
