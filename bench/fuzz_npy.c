/* Fuzz target for the .npy reader (and the parameter-table parser, which also takes .npy input):
 * every input must give 0 or a one-line error, never a crash, leak or undefined behaviour.
 * Built by bench/fuzz.sh with clang -fsanitize=fuzzer,address,undefined -DCGLOW_LIBFUZZER. Built
 * without it (make bench), it is a replay tool: build/bench/fuzz_npy FILE... runs each file once. */
#include "cglow.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void one_input(const uint8_t *data, size_t size)
{
    /* The readers take paths: hand them an in-memory file (no disk traffic). */
    int fd = memfd_create("fuzz.npy", 0);
    if (fd < 0) return;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    cglow_npy *f;
    if (cglow_npy_open(path, &f) == 0) {
        const size_t *sh = cglow_npy_shape(f);
        size_t row = cglow_npy_row_items(f), n = sh[0] < 4 ? sh[0] : 4;
        /* Read at most 4 items of axis 0, at the start and at the end (the shape is checked
         * against the file size, so these bytes exist). */
        if (row < ((size_t)1 << 24)) {
            float *buf = malloc((n ? n : 1) * row * sizeof *buf + 1);
            double *bd = malloc((n ? n : 1) * row * sizeof *bd + 1);
            if (buf && bd) {
                if (cglow_npy_read_f32(f, 0, n, buf) != 0) abort();
                if (cglow_npy_read_f64(f, sh[0] - n, n, bd) != 0) abort();
            }
            free(buf);
            free(bd);
        }
        if (cglow_npy_read_f32(f, sh[0], 1, NULL) == 0) abort();   /* out of range must fail */
        cglow_npy_close(f);
    } else if (strchr(cglow_last_error(), '\n') || !strstr(cglow_last_error(), path))
        abort();   /* errors are one line naming the file */
    cglow_table t;
    if (cglow_table_load(path, &t) == 0) cglow_table_free(&t);
    close(fd);
}

#ifdef CGLOW_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    return 0;
}
#else
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) { fprintf(stderr, "%s: cannot open\n", argv[i]); return 1; }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        one_input(buf, n);
    }
    printf("replayed %d inputs without a crash\n", argc - 1);
    return 0;
}
#endif
