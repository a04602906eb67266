/* Fuzz target for the safetensors reader and the checkpoint loader: every input must give a model
 * or a one-line error naming the file, never a crash, leak or undefined behaviour. Built by
 * bench/fuzz.sh (safetensors) with clang -fsanitize=fuzzer,address,undefined -DCGLOW_LIBFUZZER;
 * built without it (make bench) it replays files: build/bench/fuzz_safetensors FILE... */
#include "cglow.h"
#include "io/safetensors.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void one_input(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.safetensors", 0);
    if (fd < 0) return;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    st_file f;
    if (st_read(path, &f) == 0) {
        for (int i = 0; i < f.n; i++) {   /* every tensor's bytes are inside the file */
            double *v = malloc(sizeof(double) * (f.t[i].numel ? f.t[i].numel : 1));
            if (v && f.t[i].numel < ((size_t)1 << 24)) st_get_f64(&f.t[i], v);
            free(v);
        }
        st_free(&f);
    } else if (strchr(cglow_last_error(), '\n') || !strstr(cglow_last_error(), path))
        abort();
    cglow_model *m = NULL;
    if (cglow_model_load(path, &m) == 0) cglow_model_free(m);
    else if (m || strchr(cglow_last_error(), '\n') || !strstr(cglow_last_error(), path))
        abort();   /* errors are one line naming the file */
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
    static uint8_t buf[1 << 22];
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) { fprintf(stderr, "%s: cannot open\n", argv[i]); return 1; }
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        one_input(buf, n);
    }
    printf("%d inputs replayed\n", argc - 1);
    return 0;
}
#endif
