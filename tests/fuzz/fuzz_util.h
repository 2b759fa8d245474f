/*
 * fuzz_util.h — static helpers shared by the fuzz harnesses (tests/fuzz/fuzz_*.c).
 *
 * Every harness defines only LLVMFuzzerTestOneInput (plus static helpers); it is
 * linked either with libFuzzer (scripts/fuzz.sh, clang) or with replay_main.c (the
 * CTest tests fuzz_replay_<name>, gcc).  What a harness asserts is checked with
 * FZ_CHECK, which prints the broken invariant and aborts: libFuzzer records the input
 * as a crash, the replay test fails.
 *
 * Files.  Parsers that take a path read the input from a memfd through
 * "/proc/self/fd/N" (no disk, nothing left behind); parsers whose counterpart writes
 * (round trips: PATH.tmp + rename) use a private folder under /dev/shm (else $TMPDIR
 * or /tmp), removed at exit.
 */
#ifndef GPUNAS_FUZZ_UTIL_H
#define GPUNAS_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpunas/error.h"

#define FZ_CHECK(cond, ...)                                                                                         \
    do {                                                                                                            \
        if (!(cond)) {                                                                                              \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);                            \
            fprintf(stderr, __VA_ARGS__);                                                                           \
            fputc('\n', stderr);                                                                                    \
            abort();                                                                                                \
        }                                                                                                           \
    } while (0)

/* The error model (gpunas/error.h): a failure leaves exactly one non-empty line. */
static inline void fz_check_error(const gn_error *e)
{
    size_t n = strnlen(e->msg, GN_ERROR_MAX);
    FZ_CHECK(n > 0, "empty error message");
    FZ_CHECK(n < GN_ERROR_MAX, "error message not terminated");
    FZ_CHECK(!strchr(e->msg, '\n') && !strchr(e->msg, '\r'), "error message is not one line: '%s'", e->msg);
}

/* A NUL-terminated copy of the input (text parsers). */
static inline char *fz_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    FZ_CHECK(t != NULL, "out of memory");
    if (size)
        memcpy(t, data, size);
    t[size] = 0;
    return t;
}

/* ------------------------------------------------------------------ memfd files */

typedef struct {
    int fd;
    char path[64];
} fz_memfile;

/* Replace the contents of the memfd in slot m (created on first use) with data;
 * returns the path to open. */
static inline const char *fz_memfile_put(fz_memfile *m, const char *name, const void *data, size_t size)
{
    if (m->fd <= 0) {
        m->fd = memfd_create(name, MFD_CLOEXEC);
        FZ_CHECK(m->fd >= 0, "memfd_create: %s", strerror(errno));
        snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
    }
    FZ_CHECK(ftruncate(m->fd, 0) == 0, "ftruncate: %s", strerror(errno));
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(m->fd, (const char *)data + done, size - done, (off_t)done);
        FZ_CHECK(w > 0, "pwrite: %s", strerror(errno));
        done += (size_t)w;
    }
    return m->path;
}

/* ------------------------------------------------------------------ scratch folder */

static char fz_dir_path[256];

static inline void fz_dir_cleanup(void)
{
    if (!fz_dir_path[0])
        return;
    DIR *d = opendir(fz_dir_path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", fz_dir_path, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fz_dir_path);
    fz_dir_path[0] = 0;
}

/* A private folder for this process (created on first use, removed at exit). */
static inline const char *fz_dir(void)
{
    if (fz_dir_path[0])
        return fz_dir_path;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fz_dir_path, sizeof fz_dir_path, "%s/gpunas-fuzz-XXXXXX", base);
    FZ_CHECK(mkdtemp(fz_dir_path) != NULL, "mkdtemp %s: %s", fz_dir_path, strerror(errno));
    atexit(fz_dir_cleanup);
    return fz_dir_path;
}

/* "<scratch folder>/<name>" into buf. */
static inline const char *fz_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", fz_dir(), name);
    return buf;
}

static inline void fz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL, "%s: %s", path, strerror(errno));
    FZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size, "%s: short write", path);
    FZ_CHECK(fclose(f) == 0, "%s: close failed", path);
}

/* Whole file, malloc'd and NUL-terminated; NULL if it cannot be read. */
static inline char *fz_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

/* ------------------------------------------------------------------ shared inputs */

/* A tiny standard-family network (head, fused_irb with SE, irb stride 2, tail) at
 * resolution 4: the checkpoint and latency-profile harnesses build their fixed side
 * from it, and make_seeds.c writes their seeds with the same one. */
static inline const char *fz_small_arch_json(void)
{
    return "[\n"
           " {\"layer_type\": \"data\", \"img_resolution\": 4, \"distill\": false},\n"
           " {\"layer_type\": \"head\", \"num_in_channels\": 1, \"num_out_channels\": 4, \"act\": \"relu\"},\n"
           " {\"layer_type\": \"fused_irb\", \"num_in_channels\": 4, \"num_out_channels\": 4, \"stride\": 1,"
           " \"expansion\": 2, \"kernel_size\": 1, \"act\": \"swish\", \"use_se\": true, \"stage\": 1},\n"
           " {\"layer_type\": \"irb\", \"num_in_channels\": 4, \"num_out_channels\": 4, \"stride\": 2,"
           " \"expansion\": 2, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false, \"stage\": 2},\n"
           " {\"layer_type\": \"tail\", \"num_in_channels\": 4, \"num_out_channels\": 8, \"num_classes\": 2}\n"
           "]\n";
}

/* The options JSON the checkpoint harness's run has (shaped like the trainer's). */
static inline const char *fz_ckpt_options_json(void)
{
    return "{\"resolution\": 4, \"backend\": \"ref\", \"epochs\": 2, \"batch\": 8,"
           " \"optimizer\": {\"kind\": \"sgd\", \"momentum\": 0.9, \"nesterov\": true},"
           " \"schedule\": {\"kind\": \"cosine\", \"lr\": 0.1}, \"seed\": 7}";
}

/* Separator of the parts of a multi-file input (see fuzz_idx.c, fuzz_cifar.c). */
#define FZ_SEP "\n--gpunas-fuzz-part--\n"

/* Splits data at the first FZ_SEP: part 0 before it, part 1 after (size 0 and
 * *has_second 0 when there is none). */
static inline void fz_split2(const uint8_t *data, size_t size, const uint8_t **p0, size_t *n0, const uint8_t **p1,
                             size_t *n1, int *has_second)
{
    const size_t sl = sizeof FZ_SEP - 1;
    *p0 = data, *n0 = size, *p1 = data + size, *n1 = 0, *has_second = 0;
    for (size_t i = 0; size >= sl && i <= size - sl; i++)
        if (data[i] == (uint8_t)FZ_SEP[0] && memcmp(data + i, FZ_SEP, sl) == 0) {
            *n0 = i;
            *p1 = data + i + sl;
            *n1 = size - i - sl;
            *has_second = 1;
            return;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
