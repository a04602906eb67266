/* Thread count: a runtime option (on a shared box, spinning OpenMP threads cost 25-50x). */
#include "cglow.h"
#include <omp.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static int n_threads = 0;

void cglow_set_threads(int n)
{
    n_threads = n > 0 ? n : 0;
    if (n_threads > 0) omp_set_num_threads(n_threads);
    /* The engine parallelises over maps with OpenMP; BLAS calls inside stay single-threaded. */
    openblas_set_num_threads(1);
}

int cglow_get_threads(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

/* Called when a model is made: BLAS must not start threads of its own (its spinning workers
 * would compete with the engine's OpenMP threads on a small machine). */
void cglow_blas_single_threaded(void)
{
    static int done;
    if (!done) { openblas_set_num_threads(1); done = 1; }
}

/* Debian 12's OpenBLAS (0.3.21) does not know Sapphire Rapids and falls back to its generic
 * "Prescott" kernels there: dgemm of the invertible convolutions' 128 x 128 weights runs at 7
 * GFLOP/s instead of 34 with its SkylakeX kernels, which this CPU runs. The core is chosen when the
 * library loads, from OPENBLAS_CORETYPE; so a program that finds the fallback on an AVX-512 CPU
 * sets that variable and executes itself again (once: the variable is then set). */
const char *openblas_get_corename(void);

void cglow_blas_fix_core(char **argv)
{
#if defined(__x86_64__) && defined(__linux__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("CGLOW_KEEP_BLAS_CORE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0) return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    char path[4096];   /* the real path, so that ps and top still show the program's name */
    const ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0) return;
    path[len] = 0;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv(path, argv);   /* returns only on failure: carry on with the fallback */
#else
    (void)argv;
#endif
}
