/* A one-line progress report for long work: done/total, rate, ETA and a free-form tail (loss). */
#ifndef CGLOW_PROGRESS_H
#define CGLOW_PROGRESS_H
typedef struct {
    double t0, last;
    long total;
    const char *what;   /* unit name, e.g. "maps" */
} progress_t;
double now_seconds(void);
void progress_start(progress_t *p, long total, const char *what);
/* Prints at most every 0.5 s (and always when done == total) to stderr. rate_units: units per
 * second for the rate shown; tail: extra text such as "loss 1.234". */
void progress_update(progress_t *p, long done, double rate_units, const char *tail);
void progress_end(progress_t *p);
#endif
