/* A tiny test harness: each tests/test_*.c is one binary whose main() RUNs its tests; each test
 * prints "PASS name" or "FAIL name" and tests/run_tests.sh counts them. A test that cannot run on
 * this machine (no GPU) prints "SKIP name (reason)" instead: counted apart, never as a pass. */
#ifndef CGLOW_TEST_H
#define CGLOW_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail, t_failed_now;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            t_failed_now = 1;                                                             \
            printf("  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
        }                                                                                 \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_CLOSE(a, b, tol)                                                            \
    do {                                                                                  \
        double a_ = (a), b_ = (b);                                                        \
        CHECK(fabs(a_ - b_) <= (tol) * fmax(1.0, fabs(b_)) && a_ == a_,                   \
              "%s = %.10g, %s = %.10g, tol %g", #a, a_, #b, b_, (double)(tol));           \
    } while (0)

static void run_test(const char *name, void (*fn)(void))
{
    t_failed_now = 0;
    fflush(stdout);
    fn();
    if (t_failed_now) { t_fail++; printf("FAIL %s\n", name); }
    else { t_pass++; printf("PASS %s\n", name); }
    fflush(stdout);
}
#define RUN(fn) run_test(#fn, fn)
static inline void skip_test(const char *name, const char *why)
{
    printf("SKIP %s (%s)\n", name, why);
    fflush(stdout);
}
#define TEST_MAIN_END() return t_fail ? 1 : 0

/* Where ../shared is (fixtures, data); CGLOW_SHARED overrides. */
static inline const char *shared_dir(void)
{
    const char *s = getenv("CGLOW_SHARED");
    return s ? s : "../shared";
}
static inline const char *shared_path(const char *rel)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%.800s/%.200s", shared_dir(), rel);
    return buf[k];
}
/* A scratch folder for the test's files (created by run_tests.sh). */
static inline const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    const char *d = getenv("CGLOW_TEST_TMP");
    snprintf(buf[k], sizeof buf[k], "%.800s/%.200s", d ? d : "/tmp", name);
    return buf[k];
}
#endif
