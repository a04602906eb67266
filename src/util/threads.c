/* Thread count: a runtime option (on a shared box, spinning OpenMP threads cost 25-50x). */
#include "cglow.h"
#include <omp.h>

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
