/* Flag parsing and error reporting shared by the subcommands. */
#include "cli/cli.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void print_usage(FILE *f, const char *cmd, const char *summary, cli_flag *flags, int n)
{
    fprintf(f, "usage: cglow %s [flags]\n%s\n\nflags:\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        const char *arg = flags[i].kind == FLAG_BOOL ? "" : flags[i].kind == FLAG_STR ? " S"
                        : flags[i].kind == FLAG_INT ? " N" : " X";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", flags[i].name, arg);
        fprintf(f, "  %-22s %s%s\n", left, flags[i].help, flags[i].required ? " (required)" : "");
    }
    fprintf(f, "  %-22s %s\n", "--help", "this text");
}

int cli_parse(const char *cmd, const char *summary, cli_flag *flags, int nflags, int argc, char **argv,
              int *help_shown)
{
    if (help_shown) *help_shown = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout, cmd, summary, flags, nflags);
            if (help_shown) *help_shown = 1;
            return 2;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "cglow %s: error: unexpected argument '%s' (see --help)\n", cmd, a);
            return 2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_flag *fl = NULL;
        for (int k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) fl = &flags[k];
        if (!fl) {
            fprintf(stderr, "cglow %s: error: unknown flag '--%.*s' (see --help)\n", cmd, (int)len, name);
            return 2;
        }
        fl->seen = 1;
        if (fl->kind == FLAG_BOOL) {
            if (eq) {
                fprintf(stderr, "cglow %s: error: flag --%s takes no value\n", cmd, fl->name);
                return 2;
            }
            *(int *)fl->dest = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "cglow %s: error: flag --%s needs a value\n", cmd, fl->name);
            return 2;
        }
        char *end = NULL;
        errno = 0;
        switch (fl->kind) {
        case FLAG_STR: *(const char **)fl->dest = val; break;
        case FLAG_INT: {
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end) {
                fprintf(stderr, "cglow %s: error: flag --%s wants an integer, got '%s'\n", cmd, fl->name, val);
                return 2;
            }
            *(long *)fl->dest = v;
            break;
        }
        case FLAG_DOUBLE: {
            double v = strtod(val, &end);
            if (errno || end == val || *end || !isfinite(v)) {
                fprintf(stderr, "cglow %s: error: flag --%s wants a finite number, got '%s'\n", cmd, fl->name, val);
                return 2;
            }
            *(double *)fl->dest = v;
            break;
        }
        default: break;
        }
    }
    for (int k = 0; k < nflags; k++)
        if (flags[k].required && !flags[k].seen) {
            fprintf(stderr, "cglow %s: error: missing required flag --%s (see --help)\n", cmd, flags[k].name);
            return 2;
        }
    return 0;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cglow: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

int cli_fail_lib(void) { return cli_fail("%s", cglow_last_error()); }

void cli_apply_threads(long threads) { cglow_set_threads((int)threads); }

int cli_mkdirs(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf) return cli_fail("%s: path too long", path);
    strcpy(buf, path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return cli_fail("%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return cli_fail("%s: not a folder", path);
    return 0;
}
