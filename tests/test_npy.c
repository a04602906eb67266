/* .npy reading and writing: known header bytes, round trips of every version and dtype, every
 * malformed input, and the 3.75 GB CAMELS file read sparsely. */
#include "cglow.h"
#include "test.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

/* Writes raw bytes: a preamble for version ver, header text (padded to 64 with '\n'), then body. */
static void write_raw(const char *path, int ver, const char *dict, const void *body, size_t nbody, int pad)
{
    size_t pre = ver == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = pad ? (pre + dl + 1 + 63) / 64 * 64 : pre + dl + 1;
    unsigned char *b = calloc(1, total + nbody);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)ver;
    size_t hl = total - pre;
    b[8] = hl & 0xff; b[9] = (hl >> 8) & 0xff;
    if (ver != 1) { b[10] = (hl >> 16) & 0xff; b[11] = (hl >> 24) & 0xff; }
    memcpy(b + pre, dict, dl);
    memset(b + pre + dl, ' ', total - pre - dl - 1);
    b[total - 1] = '\n';
    if (nbody) memcpy(b + total, body, nbody);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, total + nbody, f);
    fclose(f);
    free(b);
}

static void test_known_header_bytes(void)
{
    /* What numpy 1.x/2.x writes for np.save(f, np.zeros((3, 4), '<f4')). */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    unsigned char want[128];
    memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(want + 10, dict, strlen(dict));
    memset(want + 10 + strlen(dict), ' ', 128 - 11 - strlen(dict));
    want[127] = '\n';
    unsigned char got[512];
    size_t len = 0;
    size_t shape[2] = {3, 4};
    CHECK(cglow_npy_header(1, 4, 2, shape, got, sizeof got, &len) == 0, "header");
    CHECK(len == 128, "len %zu", len);
    CHECK(!memcmp(got, want, 128), "bytes differ: %.*s", (int)len - 10, got + 10);
    size_t s1[1] = {5};
    CHECK(cglow_npy_header(1, 8, 1, s1, got, sizeof got, &len) == 0, "header 1-d");
    CHECK(len == 128 && strstr((char *)got + 10, "'descr': '<f8'") && strstr((char *)got + 10, "'shape': (5,), }"),
          "1-d header: %.*s", (int)len - 10, got + 10);
    /* Version 2/3: 4-byte length, total still a multiple of 64. */
    CHECK(cglow_npy_header(3, 4, 2, shape, got, sizeof got, &len) == 0 && len == 128 && got[6] == 3 && got[8] == 116 &&
          got[9] == 0 && got[10] == 0 && got[11] == 0, "v3 header len %zu", len);
}

static void test_round_trips(void)
{
    size_t shape[4] = {3, 2, 5, 4};
    float x[120];
    double xd[120];
    for (int i = 0; i < 120; i++) { x[i] = (float)(i * 0.37 - 11); xd[i] = i * 0.37 - 11 + 1e-12 * i; }
    for (int ver = 1; ver <= 3; ver++)
        for (int isz = 4; isz <= 8; isz += 4)
            for (int nd = 1; nd <= 4; nd++) {
                size_t sh[4], items = 1;
                for (int i = 0; i < nd; i++) { sh[i] = shape[i]; items *= sh[i]; }
                const char *p = tmp_path("rt.npy");
                CHECK(cglow_npy_save_ex(p, isz == 4 ? (void *)x : (void *)xd, isz, nd, sh, ver) == 0, "save v%d f%d %dd: %s", ver,
                      isz, nd, cglow_last_error());
                cglow_npy *f;
                CHECK(cglow_npy_open(p, &f) == 0, "open: %s", cglow_last_error());
                if (!f) continue;
                CHECK(cglow_npy_ndim(f) == nd && cglow_npy_itemsize(f) == isz, "ndim %d item %d", cglow_npy_ndim(f),
                      cglow_npy_itemsize(f));
                for (int i = 0; i < nd; i++) CHECK(cglow_npy_shape(f)[i] == sh[i], "shape[%d]", i);
                float got[120];
                double gotd[120];
                CHECK(cglow_npy_read_f32(f, 0, sh[0], got) == 0, "read");
                CHECK(cglow_npy_read_f64(f, 0, sh[0], gotd) == 0, "read64");
                int bad = 0;
                for (size_t i = 0; i < items; i++) {
                    if (got[i] != (isz == 4 ? x[i] : (float)xd[i])) bad++;
                    if (gotd[i] != (isz == 4 ? (double)x[i] : xd[i])) bad++;
                }
                CHECK(bad == 0, "v%d f%d %dd: %d values differ", ver, isz, nd, bad);
                /* A subset along axis 0. */
                size_t row = items / sh[0];
                if (sh[0] > 1) {
                    CHECK(cglow_npy_read_f32(f, 1, 2, got) == 0, "read subset");
                    CHECK(got[0] == (isz == 4 ? x[row] : (float)xd[row]), "subset start");
                }
                CHECK(cglow_npy_read_f32(f, sh[0], 1, got) == CGLOW_EARG, "out-of-range read must fail");
                cglow_npy_close(f);
            }
    /* Whole-file load. */
    size_t sh[2] = {6, 20};
    CHECK(cglow_npy_save_f64(tmp_path("rt2.npy"), xd, 2, sh) == 0, "save");
    float *d;
    int nd;
    size_t s[4];
    CHECK(cglow_npy_load_f32(tmp_path("rt2.npy"), &d, &nd, s) == 0, "load");
    CHECK(nd == 2 && s[0] == 6 && s[1] == 20 && d[119] == (float)xd[119], "load values");
    free(d);
}

/* The error must be code and a one-line message naming the file and containing `word`. */
static void expect_error(const char *path, int code, const char *word)
{
    cglow_npy *f = NULL;
    int rc = cglow_npy_open(path, &f);
    const char *m = cglow_last_error();
    CHECK(rc == code, "%s: rc %d, want %d (%s)", path, rc, code, m);
    CHECK(f == NULL, "no handle on error");
    CHECK(strstr(m, path) != NULL, "message names the file: %s", m);
    CHECK(strstr(m, word) != NULL, "message says '%s': %s", word, m);
    CHECK(strchr(m, '\n') == NULL, "one line: %s", m);
    cglow_npy_close(f);
}

static void test_bad_inputs(void)
{
    float body[12] = {0};
    const char *p;
    expect_error(tmp_path("does-not-exist.npy"), CGLOW_EIO, "cannot open");
    p = tmp_path("badmagic.npy");
    FILE *f = fopen(p, "wb");
    fputs("PK\x03\x04 this is a zip file, not a .npy at all", f);
    fclose(f);
    expect_error(p, CGLOW_EFORMAT, "bad magic");
    p = tmp_path("empty.npy");
    f = fopen(p, "wb");
    fclose(f);
    expect_error(p, CGLOW_EFORMAT, "bad magic");
    p = tmp_path("fortran.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", body, 48, 1);
    expect_error(p, CGLOW_ESHAPE, "Fortran");
    p = tmp_path("int.npy");
    write_raw(p, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", body, 48, 1);
    expect_error(p, CGLOW_ESHAPE, "'<i4'");
    p = tmp_path("bigendian.npy");
    write_raw(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", body, 48, 1);
    expect_error(p, CGLOW_ESHAPE, "'>f4'");
    p = tmp_path("structured.npy");
    write_raw(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", body, 12, 1);
    expect_error(p, CGLOW_EFORMAT, "dtype");
    p = tmp_path("truncated.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", body, 47, 1);
    expect_error(p, CGLOW_EFORMAT, "truncated");
    p = tmp_path("longer.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", body, 48, 1);
    expect_error(p, CGLOW_EFORMAT, "lies about the size");
    p = tmp_path("unparseable.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, four), }", body, 48, 1);
    expect_error(p, CGLOW_EFORMAT, "shape");
    p = tmp_path("garbage-header.npy");
    write_raw(p, 1, "descr = f4; shape = 3x4", body, 48, 1);
    expect_error(p, CGLOW_EFORMAT, "not a Python dict");
    p = tmp_path("nokey.npy");
    write_raw(p, 1, "{'descr': '<f4', 'shape': (3, 4), }", body, 48, 1);
    expect_error(p, CGLOW_EFORMAT, "fortran_order");
    p = tmp_path("version9.npy");
    write_raw(p, 9, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", body, 48, 1);
    expect_error(p, CGLOW_EFORMAT, "version 9");
    p = tmp_path("zero-d.npy");   /* a scalar reads as shape (1,) */
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", body, 4, 1);
    {
        float *v = NULL;
        int nd = 0;
        size_t sh[4];
        CHECK(cglow_npy_load_f32(p, &v, &nd, sh) == 0 && nd == 1 && sh[0] == 1 && v && v[0] == body[0],
              "0-d array: %s", cglow_last_error());
        free(v);
    }
    p = tmp_path("five-d.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", body, 4, 1);
    expect_error(p, CGLOW_EFORMAT, "4 dimensions");
    p = tmp_path("huge-shape.npy");
    write_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", body, 4, 1);
    expect_error(p, CGLOW_EFORMAT, "too large");
    /* A header length pointing past the end of the file. */
    p = tmp_path("short-header.npy");
    f = fopen(p, "wb");
    fwrite("\x93NUMPY\x01\x00\xff\x00{'descr'", 1, 18, f);
    fclose(f);
    expect_error(p, CGLOW_EFORMAT, "truncated");
    /* Unpadded, unusual but valid: numpy accepts any header length, so do we. */
    p = tmp_path("unpadded.npy");
    write_raw(p, 2, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(3,4)}", body, 48, 0);
    cglow_npy *g = NULL;
    CHECK(cglow_npy_open(p, &g) == 0, "unpadded header: %s", cglow_last_error());
    cglow_npy_close(g);
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_sparse_cmd_file(void)
{
    /* The CMD file: (15000, 256, 256) float32, 3.75 GB, here sparse: only map 14999 is written. */
    const char *p = tmp_path("Maps_HI_sparse.npy");
    size_t shape[3] = {15000, 256, 256}, map_bytes = 256 * 256 * 4;
    unsigned char hdr[512];
    size_t hl;
    CHECK(cglow_npy_header(1, 4, 3, shape, hdr, sizeof hdr, &hl) == 0, "header");
    int fd = open(p, O_CREAT | O_TRUNC | O_RDWR, 0644);
    CHECK(fd >= 0, "create");
    if (fd < 0) return;
    off_t total = (off_t)hl + (off_t)15000 * (off_t)map_bytes;
    CHECK(write(fd, hdr, hl) == (ssize_t)hl, "write header");
    CHECK(ftruncate(fd, total) == 0, "ftruncate");
    float *m = malloc(map_bytes);
    for (int i = 0; i < 256 * 256; i++) m[i] = (float)i * 0.5f + 1;
    CHECK(pwrite(fd, m, map_bytes, total - (off_t)map_bytes) == (ssize_t)map_bytes, "write last map");
    close(fd);
    long before = maxrss_kb();
    cglow_npy *f;
    CHECK(cglow_npy_open(p, &f) == 0, "open: %s", cglow_last_error());
    if (f) {
        float *got = calloc(256 * 256, sizeof *got);
        CHECK(cglow_npy_read_f32(f, 14999, 1, got) == 0, "read 14999");
        int bad = 0;
        for (int i = 0; i < 256 * 256; i++) bad += got[i] != m[i];
        CHECK(bad == 0, "%d values of map 14999 differ", bad);
        CHECK(cglow_npy_read_f32(f, 7000, 1, got) == 0 && got[0] == 0 && got[65535] == 0, "a hole reads as zeros");
        free(got);
        cglow_npy_close(f);
    }
    long after = maxrss_kb();
    CHECK(after - before < 64 * 1024, "max RSS grew by %ld kB reading one map of a 3.75 GB file", after - before);
    free(m);
    unlink(p);
}

int main(void)
{
    (void)shared_path;   /* test.h helper this file does not need */
    RUN(test_known_header_bytes);
    RUN(test_round_trips);
    RUN(test_bad_inputs);
    RUN(test_sparse_cmd_file);
    TEST_MAIN_END();
}
