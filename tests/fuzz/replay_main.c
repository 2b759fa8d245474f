/*
 * replay_main.c — run a fuzz harness over corpus files without libFuzzer.
 *
 *   fuzz_replay_<name> DIR_OR_FILE ...
 *
 * Calls LLVMFuzzerTestOneInput once per regular file: a file argument directly, a
 * folder's files in name order (not recursive; names starting with '.' skipped).  This
 * is how OSS-Fuzz reproduces a crash without libFuzzer, and what the CTest tests
 * fuzz_replay_<name> do with tests/fuzz/corpus/<name>/ in the Release and the
 * ASan + UBSan builds.  A harness reports a broken invariant by aborting; a sanitizer
 * report ends the process too, so reaching the end means every input passed.  An
 * input that takes longer than $GPUNAS_FUZZ_REPLAY_MAX_S seconds (default 10; the
 * fuzzer's own limit is 1 s, this one leaves room for slow sanitizer builds) counts as
 * a hang.  Exit status: 0, or 1 when an argument cannot be read, an input hangs, or no
 * input was found at all (an empty or missing corpus must not pass silently).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double max_s = 10;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "replay: %s: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return -1;
    }
    /* an exact-size copy, so that ASan sees reads past the input's end */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return -1;
    }
    memcpy(in, buf, n);
    free(buf);
    double t0 = now_s();
    LLVMFuzzerTestOneInput(in, n);
    double dt = now_s() - t0;
    free(in);
    if (dt > max_s) {
        fprintf(stderr, "replay: %s: took %.1f s (limit %.0f s): a hang is a bug\n", path, dt, max_s);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE ...\n", argv[0]);
        return 2;
    }
    const char *lim = getenv("GPUNAS_FUZZ_REPLAY_MAX_S");
    if (lim && atof(lim) > 0)
        max_s = atof(lim);
    double t0 = now_s();
    long total = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]))
                rc = 1;
            else
                total++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
            continue;
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char **nn = realloc(names, cap * sizeof *names);
                if (!nn)
                    abort();
                names = nn;
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        if (n)
            qsort(names, n, sizeof *names, by_name);
        long here = 0;
        for (size_t k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            free(names[k]);
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (run_file(path))
                rc = 1;
            else
                here++;
        }
        free(names);
        printf("replay: %s: %ld input(s)\n", argv[i], here);
        total += here;
    }
    double s = now_s() - t0;
    printf("replay: %ld input(s) in %.2f s%s\n", total, s, rc ? "" : ", no crash or hang");
    if (total == 0) {
        fprintf(stderr, "replay: no input found\n");
        rc = 1;
    }
    return rc;
}
