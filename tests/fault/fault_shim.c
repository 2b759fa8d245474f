/*
 * fault_shim.c — I/O fault injection for the fault tests (LD_PRELOAD, never linked
 * into gpunas).
 *
 * It interposes the calls through which gpunas and SQLite write files — open (for
 * writing or creating), write, pwrite, fsync, fdatasync, rename, close — and, on the
 * N-th counted call of one kind, fails it with the errno asked for instead of making
 * it, or kills the process (SIGKILL) just before or just after it.  Only calls on
 * files under the path prefixes in GN_FAULT_PREFIX count (the loader, oneDNN, the
 * data set and the terminal are never touched); a descriptor counts when its open
 * was seen under a prefix.
 *
 * Environment (all optional; without GN_FAULT the shim only traces):
 *   GN_FAULT_PREFIX  colon-separated absolute path prefixes (plain string prefixes:
 *                    "/a/b" takes /a/b/c and /a/bc) whose files count
 *   GN_FAULT         OP:ACTION:N[+]   OP: open write fsync rename close any
 *                    ACTION: an errno name (ENOSPC, EIO, EDQUOT, EROFS, ...) to fail
 *                    with, KILL (SIGKILL before the call) or KILLAFTER (after it)
 *                    N: the N-th counted call of OP (1-based); "N+": every call from
 *                    the N-th on (a disk that stays full)
 *   GN_FAULT_TRACE   a file to which one line per counted call is appended:
 *                    "pid seq op n site path result", site = module+offset of the
 *                    caller (stable across runs despite ASLR), result "ok", "fail
 *                    ERRNO" (the call itself failed), "INJECT ERRNO" or "KILL".
 *
 * "open" counts opens that create or write (O_WRONLY, O_RDWR, O_CREAT); "fsync"
 * covers fsync and fdatasync; "rename" rename, renameat, renameat2; "write" write,
 * pwrite, pwrite64, writev.  A fork()ed child keeps counting on its own copy.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OP_OPEN, OP_WRITE, OP_FSYNC, OP_RENAME, OP_CLOSE, OP_N, OP_ANY = OP_N };
static const char *const op_names[] = {"open", "write", "fsync", "rename", "close", "any"};

#define MAX_FD 4096
#define MAX_PREFIX 8

static int inited;
static char prefixes[MAX_PREFIX][PATH_MAX];
static int n_prefixes;
static char *fd_path[MAX_FD]; /* counted descriptors: their path */
static char fd_writing[MAX_FD]; /* ... opened to write (only their close counts) */
static long counts[OP_N + 1];
static long seq;
static int fault_op = -1;   /* OP_* or OP_ANY */
static long fault_n;
static int fault_sticky;
static int fault_errno;     /* > 0: fail with it */
static int fault_kill;      /* 1 before the call, 2 after it */
static char trace_path[PATH_MAX];

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);

static const struct {
    const char *name;
    int value;
} errnos[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO},       {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
              {"EFBIG", EFBIG},   {"EACCES", EACCES}, {"EPERM", EPERM},   {"EINTR", EINTR}};

static const char *errno_name(int e)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (errnos[i].value == e)
            return errnos[i].name;
    return "E?";
}

static void init(void)
{
    if (inited)
        return;
    real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    real_renameat = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    real_renameat2 = (int (*)(int, const char *, int, const char *, unsigned))dlsym(RTLD_NEXT, "renameat2");
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    real_open64 = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
    real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    real_openat64 = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat64");

    const char *p = getenv("GN_FAULT_PREFIX");
    while (p && *p && n_prefixes < MAX_PREFIX) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len < PATH_MAX) {
            memcpy(prefixes[n_prefixes], p, len);
            prefixes[n_prefixes++][len] = 0;
        }
        p = e ? e + 1 : NULL;
    }
    const char *t = getenv("GN_FAULT_TRACE");
    if (t)
        snprintf(trace_path, sizeof trace_path, "%s", t);
    const char *f = getenv("GN_FAULT");
    if (f && *f) {
        char op[16] = "", act[32] = "";
        long n = 0;
        char plus = 0;
        int k = sscanf(f, "%15[a-z]:%31[A-Z]:%ld%c", op, act, &n, &plus);
        for (int i = 0; k >= 3 && i <= OP_ANY; i++)
            if (strcmp(op, op_names[i]) == 0)
                fault_op = i;
        if (strcmp(act, "KILL") == 0)
            fault_kill = 1;
        else if (strcmp(act, "KILLAFTER") == 0)
            fault_kill = 2;
        for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
            if (strcmp(act, errnos[i].name) == 0)
                fault_errno = errnos[i].value;
        if (fault_op < 0 || n < 1 || (!fault_kill && !fault_errno)) {
            static const char msg[] = "fault_shim: bad GN_FAULT (want OP:ERRNO|KILL|KILLAFTER:N[+])\n";
            real_write(2, msg, sizeof msg - 1);
            _exit(125);
        }
        fault_n = n;
        fault_sticky = plus == '+';
    }
    inited = 1;
}

static int under_prefix(const char *path)
{
    for (int i = 0; i < n_prefixes; i++) {
        size_t len = strlen(prefixes[i]);
        if (strncmp(path, prefixes[i], len) == 0)
            return 1;
    }
    return 0;
}

/* An absolute form of PATH (relative to DIRFD, or the working folder). */
static void absolute(int dirfd, const char *path, char *out, size_t cap)
{
    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return;
    }
    char base[PATH_MAX] = "";
    if (dirfd != AT_FDCWD && dirfd >= 0 && dirfd < MAX_FD && fd_path[dirfd])
        snprintf(base, sizeof base, "%s", fd_path[dirfd]);
    else if (!getcwd(base, sizeof base))
        base[0] = 0;
    snprintf(out, cap, "%s/%s", base, path);
}

static void site_of(void *ret, char *buf, size_t cap)
{
    Dl_info di;
    if (ret && dladdr(ret, &di) && di.dli_fname) {
        const char *slash = strrchr(di.dli_fname, '/');
        snprintf(buf, cap, "%s+0x%lx", slash ? slash + 1 : di.dli_fname,
                 (unsigned long)((char *)ret - (char *)di.dli_fbase));
    } else {
        snprintf(buf, cap, "?");
    }
}

static void trace(int op, long n, void *ret, const char *path, const char *result)
{
    if (!trace_path[0])
        return;
    char site[256], line[PATH_MAX + 512];
    site_of(ret, site, sizeof site);
    int len = snprintf(line, sizeof line, "%d %ld %s %ld %s %s %s\n", (int)getpid(), seq, op_names[op], n, site, path,
                       result);
    if (len <= 0)
        return;
    if (len >= (int)sizeof line)
        len = (int)sizeof line - 1;
    int saved = errno;
    int fd = real_open(trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!real_write(fd, line, (size_t)len);
        real_close(fd);
    }
    errno = saved;
}

/* Decide for a counted call: 0 go ahead, -1 fail with errno set (traced).  *after is
 * set when the process must die right after the call. */
static int before(int op, void *ret, const char *path, int *after, long *n_out)
{
    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    long n = __atomic_add_fetch(&counts[op], 1, __ATOMIC_RELAXED);
    long any = __atomic_add_fetch(&counts[OP_ANY], 1, __ATOMIC_RELAXED);
    *n_out = n;
    *after = 0;
    long k = fault_op == OP_ANY ? any : fault_op == op ? n : -1;
    int hit = k > 0 && (k == fault_n || (fault_sticky && k > fault_n));
    if (!hit)
        return 0;
    if (fault_kill == 1) {
        trace(op, n, ret, path, "KILL");
        raise(SIGKILL);
    }
    if (fault_kill == 2) {
        *after = 1;
        return 0;
    }
    char r[32];
    snprintf(r, sizeof r, "INJECT %s", errno_name(fault_errno));
    trace(op, n, ret, path, r);
    errno = fault_errno;
    return -1;
}

static void after_call(int op, long n, void *ret, const char *path, int rc, int kill_after)
{
    int saved = errno;
    char r[32];
    if (kill_after) {
        trace(op, n, ret, path, "KILL");
        raise(SIGKILL);
    }
    if (rc < 0)
        snprintf(r, sizeof r, "fail %s", errno_name(saved));
    else
        snprintf(r, sizeof r, "ok");
    trace(op, n, ret, path, r);
    errno = saved;
}

static const char *counted_fd(int fd)
{
    return fd >= 0 && fd < MAX_FD ? fd_path[fd] : NULL;
}

static void remember(int fd, const char *path)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    free(fd_path[fd]);
    fd_path[fd] = strdup(path);
}

/* ------------------------------------------------------------------ open */
static int do_open(int dirfd, const char *path, int flags, mode_t mode, void *ret, int use_at, int is64)
{
    init();
    char abs[PATH_MAX + 256];
    absolute(use_at ? dirfd : AT_FDCWD, path, abs, sizeof abs);
    int counted = n_prefixes > 0 && under_prefix(abs);
    int writing = (flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0;
    int kill_after = 0;
    long n = 0;
    if (counted && writing && before(OP_OPEN, ret, abs, &kill_after, &n))
        return -1;
    int fd;
    if (use_at)
        fd = is64 ? real_openat64(dirfd, path, flags, mode) : real_openat(dirfd, path, flags, mode);
    else
        fd = is64 ? real_open64(path, flags, mode) : real_open(path, flags, mode);
    if (counted && writing)
        after_call(OP_OPEN, n, ret, abs, fd, kill_after);
    if (fd >= 0 && fd < MAX_FD) {
        if (counted) {
            remember(fd, abs);
            fd_writing[fd] = (char)writing;
        } else {
            free(fd_path[fd]);
            fd_path[fd] = NULL;
        }
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, m, __builtin_return_address(0), 0, 0);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, m, __builtin_return_address(0), 0, 1);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, m, __builtin_return_address(0), 1, 0);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, m, __builtin_return_address(0), 1, 1);
}

int creat(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, __builtin_return_address(0), 0, 0);
}

int creat64(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, __builtin_return_address(0), 0, 1);
}

/* ------------------------------------------------------------------ write */
#define COUNTED_CALL(OP, FD, CALL)                                                                           \
    do {                                                                                                     \
        init();                                                                                              \
        const char *p_ = counted_fd(FD);                                                                     \
        if (!p_)                                                                                             \
            return CALL;                                                                                     \
        void *ret_ = __builtin_return_address(0);                                                            \
        int ka_;                                                                                             \
        long n_;                                                                                             \
        if (before(OP, ret_, p_, &ka_, &n_))                                                                 \
            return -1;                                                                                       \
        __typeof__(CALL) r_ = CALL;                                                                          \
        after_call(OP, n_, ret_, p_, r_ < 0 ? -1 : 0, ka_);                                                  \
        return r_;                                                                                           \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n) { COUNTED_CALL(OP_WRITE, fd, real_write(fd, buf, n)); }

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    COUNTED_CALL(OP_WRITE, fd, real_pwrite(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    COUNTED_CALL(OP_WRITE, fd, real_pwrite64(fd, buf, n, off));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) { COUNTED_CALL(OP_WRITE, fd, real_writev(fd, iov, cnt)); }

int fsync(int fd) { COUNTED_CALL(OP_FSYNC, fd, real_fsync(fd)); }

int fdatasync(int fd) { COUNTED_CALL(OP_FSYNC, fd, real_fdatasync(fd)); }

int close(int fd)
{
    init();
    const char *p = counted_fd(fd);
    if (p && !fd_writing[fd]) {
        free(fd_path[fd]);
        fd_path[fd] = NULL;
        p = NULL;
    }
    if (!p)
        return real_close(fd);
    void *ret = __builtin_return_address(0);
    int ka;
    long n;
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s", p);
    free(fd_path[fd]);
    fd_path[fd] = NULL;
    /* an injected close error still closes the descriptor, as Linux does */
    if (before(OP_CLOSE, ret, path, &ka, &n)) {
        int e = errno;
        real_close(fd);
        errno = e;
        return -1;
    }
    int r = real_close(fd);
    after_call(OP_CLOSE, n, ret, path, r, ka);
    return r;
}

/* ------------------------------------------------------------------ rename */
static int do_rename(int olddir, const char *from, int newdir, const char *to, unsigned flags, int kind, void *ret)
{
    init();
    char a[PATH_MAX + 256], b[PATH_MAX + 256];
    absolute(olddir, from, a, sizeof a);
    absolute(newdir, to, b, sizeof b);
    int counted = n_prefixes > 0 && (under_prefix(a) || under_prefix(b));
    int ka = 0;
    long n = 0;
    if (counted && before(OP_RENAME, ret, b, &ka, &n))
        return -1;
    int r = kind == 0 ? real_rename(from, to)
            : kind == 1 ? real_renameat(olddir, from, newdir, to)
                        : real_renameat2(olddir, from, newdir, to, flags);
    if (counted)
        after_call(OP_RENAME, n, ret, b, r, ka);
    return r;
}

int rename(const char *from, const char *to)
{
    return do_rename(AT_FDCWD, from, AT_FDCWD, to, 0, 0, __builtin_return_address(0));
}

int renameat(int olddir, const char *from, int newdir, const char *to)
{
    return do_rename(olddir, from, newdir, to, 0, 1, __builtin_return_address(0));
}

int renameat2(int olddir, const char *from, int newdir, const char *to, unsigned flags)
{
    return do_rename(olddir, from, newdir, to, flags, 2, __builtin_return_address(0));
}
