/* Syscall probe for the seccomp differential test (tests/suite/seccomp.rs): calls each syscall
 * with harmless arguments and prints "NAME RESULT", RESULT being "ok" or the errno name. The
 * same static binary runs under `docker run` and in a RUN step; the outputs must agree.
 * Built with `cc -static -O1 -o probe syscalls.c`. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ESRCH: return "ESRCH";
    case EACCES: return "EACCES";
    case ENOKEY: return "ENOKEY";
    case EDQUOT: return "EDQUOT";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EBUSY: return "EBUSY";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    default: return "other";
    }
}

static void report(FILE *out, const char *name, long result) {
    if (result >= 0)
        fprintf(out, "%s ok\n", name);
    else
        fprintf(out, "%s %s\n", name, errno_name(errno));
}

int main(int argc, char **argv) {
    FILE *out = stdout;
    if (argc > 1) {
        out = fopen(argv[1], "w");
        if (!out)
            return 2;
    }
    /* KEYCTL_GET_KEYRING_ID of the session keyring, without creating it */
    report(out, "keyctl", syscall(SYS_keyctl, 0, -3, 0));
    report(out, "add_key", syscall(SYS_add_key, "user", "rbuild-probe", "x", 1, -2));
    report(out, "unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER));
    report(out, "mount", syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL));
    report(out, "clone3", syscall(SYS_clone3, NULL, 0));
    /* not attached to ourselves: the kernel answers ESRCH when the call is let through */
    report(out, "ptrace", syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, getpid(), NULL, NULL));
    report(out, "io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
    report(out, "setns", syscall(SYS_setns, -1, 0));
    report(out, "open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    report(out, "sethostname", syscall(SYS_sethostname, "rbuild-probe", 12));
    struct timex tx;
    memset(&tx, 0, sizeof tx); /* modes 0: only reads the clock state */
    report(out, "adjtimex_read", syscall(SYS_adjtimex, &tx));
    report(out, "personality_query", syscall(SYS_personality, 0xffffffffUL));
    report(out, "kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0));
    report(out, "bpf", syscall(SYS_bpf, 0, NULL, 0));
    report(out, "umount2", syscall(SYS_umount2, "/nonexistent", 0));
    report(out, "pivot_root", syscall(SYS_pivot_root, "/nonexistent", "/nonexistent"));
    /* a child in a new uts namespace exits at once if the call is let through */
    long child = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
    if (child == 0)
        _exit(0);
    if (child > 0)
        waitpid((pid_t)child, NULL, 0);
    report(out, "clone_newuts", child);
    report(out, "getpid", syscall(SYS_getpid));
    if (out != stdout)
        fclose(out);
    return 0;
}
