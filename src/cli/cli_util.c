/* cli_util.c — small helpers shared by subcommands. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpunas %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_store_operand(const char *cmd, const char *a, const char **where)
{
    if (a[0] == '-' && a[1]) {
        cli_error(cmd, "unknown option '%s' (see gpunas %s --help)", a, cmd);
        return 2;
    }
    if (*where) {
        cli_error(cmd, "more than one store given ('%s' and '%s')", *where, a);
        return 2;
    }
    *where = a;
    return 0;
}

int cli_puts_json(json_t *v, int precision)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(precision));
    json_decref(v);
    if (!s)
        return -1;
    puts(s);
    free(s);
    return 0;
}

int cli_parse_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out)
{
    if (!s) {
        cli_error(cmd, "option %s: missing value", flag);
        return -1;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        cli_error(cmd, "option %s: '%s' is not an integer", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error(cmd, "option %s: %ld out of range [%d, %d]", flag, v, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out)
{
    if (!s) {
        cli_error(cmd, "option %s: missing value", flag);
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_error(cmd, "option %s: '%s' is not a number", flag, s);
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error(cmd, "option %s: %g out of range [%g, %g]", flag, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    if (!s) {
        cli_error(cmd, "option %s: missing value", flag);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        cli_error(cmd, "option %s: '%s' is not a non-negative integer", flag, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static volatile sig_atomic_t g_stop;
static int g_second_exit;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (g_stop && g_second_exit > 0)
        _exit(g_second_exit);
    g_stop = 1;
}

void cli_stop_on_signals(int exit_code)
{
    g_second_exit = exit_code;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_stop_requested(void)
{
    return g_stop != 0;
}

int cli_should_stop(void *user)
{
    (void)user;
    return g_stop != 0;
}
