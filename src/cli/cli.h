/*
 * cli.h — subcommands of the gpunas CLI.  Each takes argc/argv after the subcommand
 * name (argv[0] is the subcommand) and returns the process exit status.  Errors go to
 * stderr as one line "gpunas <cmd>: <message>"; results go to stdout.
 */
#ifndef GPUNAS_CLI_H
#define GPUNAS_CLI_H

#include <stdint.h>

int cmd_info(int argc, char **argv);
int cmd_format(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_latency(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_trials(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_zerocost(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_hub(int argc, char **argv);
int cmd_hub_plot(int argc, char **argv); /* `hub plot` (cmd_hub_plot.c), argv after "plot" */
int cmd_import(int argc, char **argv);
int cmd_unas(int argc, char **argv);

/* shared helpers (cli_util.c) */
int cli_parse_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out);
int cli_parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);
int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one store operand of a store-reading command (trials, workers): a that is not an
 * option becomes *where, unless a store was given already.  0, or 2 (the exit status)
 * after a one-line error: an unknown option, or a second store. */
int cli_store_operand(const char *cmd, const char *a, const char **where);
/* Print V (a jansson value, whose reference this takes) to stdout as indented JSON, keys
 * in insertion order, reals with PRECISION significant digits.  0, or -1 when it cannot
 * be formatted (out of memory); nothing is printed then. */
struct json_t;
int cli_puts_json(struct json_t *v, int precision);
/* A clean stop on SIGINT and SIGTERM: the first signal sets a flag the command polls
 * (cli_stop_requested, or cli_should_stop as a library callback); with exit_code > 0
 * a second signal exits at once with that code. */
void cli_stop_on_signals(int exit_code);
int cli_stop_requested(void);
int cli_should_stop(void *user);

#endif
