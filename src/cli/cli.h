/* The command-line tool: one file per subcommand (cmd_<name>), plus shared flag parsing. */
#ifndef CGLOW_CLI_H
#define CGLOW_CLI_H
#include "cglow.h"
#include <math.h>
#include <stdio.h>

/* Every subcommand: returns the process exit code (0 ok, 1 error, 2 usage). */
typedef int (*cli_cmd_fn)(int argc, char **argv);

/* Flag parsing: "--name value" or "--name=value". Unknown flags are errors (exit 2).
 * Declare the flags of a command in a table, then call cli_parse. */
typedef enum { FLAG_STR, FLAG_INT, FLAG_DOUBLE, FLAG_BOOL } flag_kind;
typedef struct {
    const char *name;   /* without the leading "--" */
    flag_kind kind;
    void *dest;         /* const char **, long *, double *, int * */
    const char *help;
    int required;
    int seen;           /* set by cli_parse */
} cli_flag;

/* Parses argv[1..] into the flags; prints usage and returns 2 on --help (with *help_shown = 1) or on
 * a bad flag; positional arguments are refused. On success returns 0. */
int cli_parse(const char *cmd, const char *summary, cli_flag *flags, int nflags, int argc, char **argv,
              int *help_shown);
/* Prints "cglow: error: <msg>" (one line) to stderr and returns 1. */
int cli_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints "cglow: error: <cglow_last_error()>" and returns 1. */
int cli_fail_lib(void);
/* Applies --threads (0 = default) once flags are parsed. */
void cli_apply_threads(long threads);
/* Creates a folder (and its parents); returns 0 or prints an error and returns 1. */
int cli_mkdirs(const char *path);

int cmd_init(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_logprob(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_synth_loglike(int argc, char **argv);
int cmd_pk(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_demo(int argc, char **argv);
#endif
