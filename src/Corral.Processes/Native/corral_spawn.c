// Corral's spawn: clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD [| CLONE_INTO_CGROUP]) and exec, the way glibc's
// posix_spawn works, plus what posix_spawn cannot do: start the child inside a cgroup, so that the kernel puts it
// there at creation and no migration (cgroup.procs write) is needed, and change its identity (groups, gid, uid, then
// no_new_privs) before exec. Built when a C compiler is present; without it Corral falls back to posix_spawn (see
// Spawner.cs). x86-64 only for now: elsewhere it reports ENOSYS.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif

// Filled by the caller; child_errno/child_step are written by the child (it shares our memory until it execs).
struct corral_spawn_request
{
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;      // NULL: inherit ours
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    int cgroup_fd;        // an O_DIRECTORY fd of the target cgroup, or -1
    int child_errno;
    int child_step;       // CORRAL_STEP_*: what failed in the child
    int set_user;         // nonzero: become uid/gid with exactly these supplementary groups, and set no_new_privs
    unsigned int uid;
    unsigned int gid;
    int group_count;
    const unsigned int *groups;
    int mount_count;      // nonzero: a mount namespace of the child's own, where each target shows its source
    const char *const *mount_sources;
    const char *const *mount_targets;
    int mount_ns_fd;      // >= 0: join this mount namespace instead (mount_count is then 0); the namespace call's result
    int new_ipc;          // nonzero: an IPC namespace of the child's own (System V objects, POSIX message queues)
    uint64_t *mount_ids;  // non-NULL: the namespace maker stores (device, inode) of each directory it bound, 2 per mount
    int own_processes;    // nonzero: in that mount namespace, a /proc that shows only what the tree's user may inspect
    int clear_keyrings;   // nonzero (with set_user): empty the user's own keyrings, which outlive its processes
};

enum
{
    CORRAL_STEP_SETSID = 1,
    CORRAL_STEP_CHDIR = 2,
    CORRAL_STEP_DUP2 = 3,
    CORRAL_STEP_EXEC = 4,
    CORRAL_STEP_SETGROUPS = 5,
    CORRAL_STEP_SETGID = 6,
    CORRAL_STEP_SETUID = 7,
    CORRAL_STEP_NO_NEW_PRIVS = 8,
    CORRAL_STEP_UNSHARE = 9,
    CORRAL_STEP_MOUNT = 10,
    CORRAL_STEP_SETNS = 11,
    CORRAL_STEP_IPC = 12,
    CORRAL_STEP_PROC = 13,
    CORRAL_STEP_KEYRING = 14,
};

// keyctl(2) operations and special keyring ids (linux/keyctl.h, not in every set of headers).
#define CORRAL_KEYCTL_JOIN_SESSION_KEYRING 1
#define CORRAL_KEYCTL_CLEAR 7
#define CORRAL_KEYCTL_GET_PERSISTENT 22
#define CORRAL_KEY_SPEC_SESSION_KEYRING (-3)
#define CORRAL_KEY_SPEC_USER_KEYRING (-4)
#define CORRAL_KEY_SPEC_USER_SESSION_KEYRING (-5)

// A kernel built without keys has none to leak: ENOSYS / EOPNOTSUPP are not failures.
static int keyctl_ok(long result)
{
    return result >= 0 || errno == ENOSYS || errno == EOPNOTSUPP;
}

// Only raw syscalls below: the child runs on its own small stack in our address space, must not take a lock
// another thread of ours may hold (so no malloc, no stdio), and never returns into the caller's frames.
static int child_fail(struct corral_spawn_request *r, int step)
{
    r->child_errno = errno ? errno : EIO;
    r->child_step = step;
    syscall(SYS_exit_group, 127);
    return 127;
}

static int move_fd(int from, int to)
{
    if (from == to)
    {
        // dup2 onto itself keeps FD_CLOEXEC: clear it so the descriptor survives exec.
        int flags = (int)syscall(SYS_fcntl, from, F_GETFD);
        return flags < 0 ? -1 : (int)syscall(SYS_fcntl, from, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return (int)syscall(SYS_dup2, from, to) < 0 ? -1 : 0;
}

#define CORRAL_MAX_MOUNTS 16

// "/proc/self/fd/N" into buf (at least 32 bytes): no libc formatting in the child.
static void fd_path(char *buf, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int i = 0, n = 0;
    for (; prefix[i] != 0; i++)
        buf[i] = prefix[i];
    do
        digits[n++] = (char)('0' + fd % 10);
    while ((fd /= 10) > 0);
    while (n > 0)
        buf[i++] = digits[--n];
    buf[i] = 0;
}

// A mount namespace of this task's own, whose mounts propagate to nobody (MS_SLAVE: the host's still reach it),
// then each source bound over its target. Every source is opened before the first mount, which could hide a later
// one (a source under /tmp, bound over). Their descriptors are closed here on every path: the namespace maker shares
// our descriptor table.
static int make_mounts(struct corral_spawn_request *r)
{
    int sources[CORRAL_MAX_MOUNTS];
    char path[32];
    if (r->mount_count > CORRAL_MAX_MOUNTS)
    {
        errno = EINVAL;
        return child_fail(r, CORRAL_STEP_MOUNT);
    }
    if (syscall(SYS_unshare, CLONE_NEWNS) < 0)
        return child_fail(r, CORRAL_STEP_UNSHARE);
    if (syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        return child_fail(r, CORRAL_STEP_MOUNT);
    int opened = 0, failed = 0;
    for (; opened < r->mount_count && !failed; opened++)
        failed = (sources[opened] = (int)syscall(SYS_open, r->mount_sources[opened], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0;
    if (failed)
        opened--;
    // What each descriptor holds is what its mount binds, whatever its path names by then: the caller checks these.
    for (int i = 0; i < r->mount_count && !failed && r->mount_ids != NULL; i++)
    {
        struct statx st;
        failed = syscall(SYS_statx, sources[i], "", AT_EMPTY_PATH, STATX_INO, &st) < 0;
        if (!failed)
        {
            r->mount_ids[2 * i] = ((uint64_t)st.stx_dev_major << 32) | st.stx_dev_minor;
            r->mount_ids[2 * i + 1] = st.stx_ino;
        }
    }
    for (int i = 0; i < r->mount_count && !failed; i++)
    {
        fd_path(path, sources[i]);
        failed = syscall(SYS_mount, path, r->mount_targets[i], NULL, MS_BIND | MS_REC, NULL) < 0;
    }
    int error = errno;
    for (int i = 0; i < opened; i++)
        syscall(SYS_close, sources[i]);
    errno = error;
    if (failed)
        return child_fail(r, CORRAL_STEP_MOUNT);
    // A procfs of the namespace's own with hidepid=invisible: other users' processes are not there at all. Since Linux
    // 5.8 each procfs mount has its own options; an older kernel refuses "invisible" (it only knew numbers, and a
    // number would have changed the host's /proc too), so the spawn fails rather than touch the host's.
    if (r->own_processes && syscall(SYS_mount, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") < 0)
        return child_fail(r, CORRAL_STEP_PROC);
    return 0;
}

static int child_main(void *arg)
{
    struct corral_spawn_request *r = arg;

    // Every disposition back to default while all signals are still blocked (the caller blocked them before the
    // clone): none of our handlers may ever run here. A zeroed kernel sigaction is SIG_DFL with an empty mask on
    // every architecture, whatever the struct layout.
    unsigned char dfl[64];
    memset(dfl, 0, sizeof dfl);
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, dfl, NULL, 8);

    if (syscall(SYS_setsid) < 0)
        return child_fail(r, CORRAL_STEP_SETSID);

    // Private directories, while we still hold CAP_SYS_ADMIN: a namespace made for trees like this one (joining it
    // copies no mount table and leaves none to tear down at exit), or one of the tree's own.
    if (r->mount_ns_fd >= 0)
    {
        // Joining moves us to the namespace's root: the working directory we inherited is entered again by its path,
        // inside the namespace (as root still); where that path is hidden by a mount, the directory itself, as unshare
        // would have kept it.
        char cwd[4096];
        long known = r->cwd == NULL ? syscall(SYS_getcwd, cwd, sizeof cwd) : -1;
        int here = r->cwd == NULL ? (int)syscall(SYS_open, ".", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
        if (syscall(SYS_setns, r->mount_ns_fd, CLONE_NEWNS) < 0)
            return child_fail(r, CORRAL_STEP_SETNS);
        if ((known <= 0 || cwd[0] != '/' || syscall(SYS_chdir, cwd) < 0) && here >= 0)
            syscall(SYS_fchdir, here);
        if (here >= 0)
            syscall(SYS_close, here);
    }
    else if ((r->mount_count > 0 || r->own_processes) && make_mounts(r) < 0)
        return -1;
    if (r->new_ipc && syscall(SYS_unshare, CLONE_NEWIPC) < 0)
        return child_fail(r, CORRAL_STEP_IPC);

    // The identity, before anything that checks permissions (chdir, exec): those checks are then the user's. Raw
    // syscalls act on this task alone; glibc's setuid() would try to change every thread of the parent we share
    // memory with. Groups first (needs CAP_SETGID), then the gid, and the uid last (it drops the capabilities).
    if (r->set_user)
    {
        if (syscall(SYS_setgroups, (long)r->group_count, r->groups) < 0)
            return child_fail(r, CORRAL_STEP_SETGROUPS);
        if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0)
            return child_fail(r, CORRAL_STEP_SETGID);
        if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0)
            return child_fail(r, CORRAL_STEP_SETUID);
        // No setuid binary, file capability or LSM transition can give the tree back what it just lost.
        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
            return child_fail(r, CORRAL_STEP_NO_NEW_PRIVS);
        // A uid's own keyrings outlive its processes (Linux 5.3; the persistent one for days): what an earlier tree
        // of the uid put there goes, first, so that its keys no longer count against the uid's quota.
        if (r->clear_keyrings
            && (!keyctl_ok(syscall(SYS_keyctl, CORRAL_KEYCTL_CLEAR, CORRAL_KEY_SPEC_USER_KEYRING))
                || !keyctl_ok(syscall(SYS_keyctl, CORRAL_KEYCTL_CLEAR, CORRAL_KEY_SPEC_USER_SESSION_KEYRING))))
            return child_fail(r, CORRAL_STEP_KEYRING);
        // The session keyring we inherited is Corral's, and its keys are the possessor's: a new, empty one instead.
        if (!keyctl_ok(syscall(SYS_keyctl, CORRAL_KEYCTL_JOIN_SESSION_KEYRING, NULL)))
            return child_fail(r, CORRAL_STEP_KEYRING);
        if (r->clear_keyrings)
        {
            long persistent = syscall(SYS_keyctl, CORRAL_KEYCTL_GET_PERSISTENT, -1L, CORRAL_KEY_SPEC_SESSION_KEYRING);
            if (!keyctl_ok(persistent) || (persistent >= 0 && !keyctl_ok(syscall(SYS_keyctl, CORRAL_KEYCTL_CLEAR, persistent))))
                return child_fail(r, CORRAL_STEP_KEYRING);
        }
    }

    if (r->cwd != NULL && syscall(SYS_chdir, r->cwd) < 0)
        return child_fail(r, CORRAL_STEP_CHDIR);
    if (move_fd(r->stdin_fd, 0) < 0 || move_fd(r->stdout_fd, 1) < 0 || move_fd(r->stderr_fd, 2) < 0)
        return child_fail(r, CORRAL_STEP_DUP2);
    if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
    {
        // Before Linux 5.9: .NET opens everything close-on-exec, so this only matters for foreign descriptors.
        for (int fd = 3; fd < 4096; fd++)
            syscall(SYS_close, fd);
    }

    uint64_t none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
    syscall(SYS_execve, r->path, r->argv, r->envp);
    return child_fail(r, CORRAL_STEP_EXEC);
}

#if defined(__x86_64__)
// clone3 with a new stack returns in the child on that stack, so the child's side cannot be C code of this
// frame: it calls fn(arg) there and exits with its result.
static long clone3_run(struct clone_args *args, size_t size, int (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register struct clone_args *rdi __asm__("rdi") = args;
    register size_t rsi __asm__("rsi") = size;
    register int (*r12)(void *) __asm__("r12") = fn;
    register void *r13 __asm__("r13") = arg;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"
        "mov %%r13, %%rdi\n\t"
        "call *%%r12\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $231, %%eax\n\t" // exit_group
        "syscall\n\t"
        "hlt\n"
        "1:"
        : "+r"(rax)
        : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
        : "rcx", "r11", "memory", "cc");
    return rax;
}
#define CORRAL_HAVE_CLONE3_RUN 1

// Runs fn(r) in a child of the given clone flags on a stack in this frame: we are suspended (CLONE_VFORK) for as long
// as the child uses it. Every signal is blocked meanwhile (glibc's internal ones too, hence the raw syscall), so the
// child starts with none deliverable.
static long run_child(uint64_t flags, int *pidfd, int cgroup_fd, int (*fn)(void *), struct corral_spawn_request *r)
{
    _Alignas(16) char stack[16 * 1024];
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags | CLONE_VM | CLONE_VFORK | (pidfd != NULL ? CLONE_PIDFD : 0) | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = sizeof stack;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    r->child_errno = 0;
    r->child_step = 0;

    uint64_t all = ~0ULL, old = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
    long pid = clone3_run(&args, sizeof args, fn, r);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
    return pid;
}

// Reaps a child that never exec'd: it is ours alone.
static void reap(long pid)
{
    siginfo_t info;
    while (waitid(P_PID, (id_t)pid, &info, WEXITED) < 0 && errno == EINTR)
    {
    }
}
#endif

// The namespace maker's child: it shares our descriptor table (CLONE_FILES), so the namespace it opens is ours.
static int namespace_main(void *arg)
{
    struct corral_spawn_request *r = arg;
    if (make_mounts(r) < 0)
        return 127;
    int fd = (int)syscall(SYS_open, "/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return child_fail(r, CORRAL_STEP_MOUNT);
    r->mount_ns_fd = fd;
    return 0;
}

// Makes a mount namespace with r's mounts and stores a descriptor of it in r->mount_ns_fd (0), or returns -errno
// (and *step). The namespace lives as long as that descriptor, or a process in it.
int corral_mount_namespace(struct corral_spawn_request *r, int *step)
{
    *step = 0;
    r->mount_ns_fd = -1;
#ifndef CORRAL_HAVE_CLONE3_RUN
    (void)r;
    return -ENOSYS;
#else
    long pid = run_child(CLONE_FILES, NULL, -1, namespace_main, r);
    if (pid < 0)
        return (int)pid;
    reap(pid);
    if (r->child_errno != 0)
    {
        *step = r->child_step;
        if (r->mount_ns_fd >= 0)
            close(r->mount_ns_fd);
        r->mount_ns_fd = -1;
        return -r->child_errno;
    }
    return r->mount_ns_fd >= 0 ? 0 : -EIO;
#endif
}

// Returns the child's PID and stores its pidfd in *pidfd; or -errno (and *step says where, if the child failed).
int corral_spawn(struct corral_spawn_request *r, int *pidfd, int *step)
{
    *pidfd = -1;
    *step = 0;
#ifndef CORRAL_HAVE_CLONE3_RUN
    (void)r;
    return -ENOSYS;
#else
    int fd = -1;
    long pid = run_child(0, &fd, r->cgroup_fd, child_main, r);
    if (pid < 0)
        return (int)pid;
    if (r->child_errno != 0)
    {
        reap(pid);
        if (fd >= 0)
            close(fd);
        *step = r->child_step;
        return -r->child_errno;
    }

    *pidfd = fd;
    return (int)pid;
#endif
}
