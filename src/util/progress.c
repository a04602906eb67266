#include "util/progress.h"
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void progress_start(progress_t *p, long total, const char *what)
{
    p->t0 = p->last = now_seconds();
    p->total = total;
    p->what = what;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void progress_update(progress_t *p, long done, double rate_units, const char *tail)
{
    double t = now_seconds();
    if (done < p->total && t - p->last < 0.5) return;
    p->last = t;
    double el = t - p->t0, eta = done > 0 ? el * (p->total - done) / done : -1;
    char e1[32], e2[32];
    fmt_time(e1, sizeof e1, el);
    fmt_time(e2, sizeof e2, eta);
    int tty = isatty(2);
    fprintf(stderr, "%s%ld/%ld (%.0f%%) %.1f %s/s elapsed %s ETA %s %s%s", tty ? "\r\033[K" : "",
            done, p->total, p->total ? 100.0 * done / p->total : 100.0, rate_units, p->what, e1, e2,
            tail ? tail : "", tty ? "" : "\n");
    fflush(stderr);
}

void progress_end(progress_t *p)
{
    if (isatty(2)) fputc('\n', stderr);
}
