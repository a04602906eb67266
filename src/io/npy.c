/* NumPy .npy files (format 1.0, 2.0, 3.0; '<f4' and '<f8'; C order; 1-4 dims).
 * Reading memory-maps the file, so that a few maps of CAMELS' 3.75 GB file cost only their own
 * pages; writing is atomic. Every malformed input is a one-line error naming the file. */
#include "cglow.h"
#include "util/fileio.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cglow's .npy code assumes a little-endian host ('<f4', '<f8' are read by memcpy)"
#endif

#define NPY_MAX_HEADER (1u << 20)   /* far above any real header; bounds what a fuzzer can make us read */

struct cglow_npy {
    char path[1024];
    int fd;
    unsigned char *map;
    size_t map_len;
    size_t data_off;
    int ndim, itemsize, version;
    size_t shape[4];
    size_t row_items;   /* items per index of axis 0 */
    size_t n_items;
};

/* ---------------------------------------------------------------- header parsing */
typedef struct {
    const char *s;
    size_t n, i;
} hdr_parser;

static void skip_ws(hdr_parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}
static int accept(hdr_parser *p, char c)
{
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == c) { p->i++; return 1; }
    return 0;
}
/* A Python string literal ('...' or "...", no escapes needed for our keys) into buf. */
static int parse_str(hdr_parser *p, char *buf, size_t cap)
{
    skip_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) return -1;
    char q = p->s[p->i++];
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != q) {
        if (k + 1 >= cap) return -1;
        buf[k++] = p->s[p->i++];
    }
    if (p->i >= p->n) return -1;
    p->i++;
    buf[k] = 0;
    return 0;
}
static int parse_word(hdr_parser *p, const char *w)
{
    skip_ws(p);
    size_t l = strlen(w);
    if (p->n - p->i >= l && !memcmp(p->s + p->i, w, l)) { p->i += l; return 1; }
    return 0;
}

/* Parses the header dict; on error fills why[] and returns -1. */
static int parse_header(const char *text, size_t len, char *descr, size_t dcap, int *fortran, int *ndim,
                        size_t shape[4], char *why, size_t wcap)
{
    hdr_parser p = {text, len, 0};
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    if (!accept(&p, '{')) { snprintf(why, wcap, "header is not a Python dict"); return -1; }
    for (;;) {
        if (accept(&p, '}')) break;
        char key[32];
        if (parse_str(&p, key, sizeof key) || !accept(&p, ':')) {
            snprintf(why, wcap, "unparseable header near byte %zu", p.i);
            return -1;
        }
        if (!strcmp(key, "descr")) {
            if (parse_str(&p, descr, dcap)) {
                snprintf(why, wcap, "unsupported dtype description (structured or unparseable; only '<f4' and '<f8')");
                return -1;
            }
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (parse_word(&p, "True")) *fortran = 1;
            else if (parse_word(&p, "False")) *fortran = 0;
            else { snprintf(why, wcap, "fortran_order is neither True nor False"); return -1; }
            have_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            if (!accept(&p, '(')) { snprintf(why, wcap, "shape is not a tuple"); return -1; }
            int nd = 0;
            while (!accept(&p, ')')) {
                skip_ws(&p);
                size_t v = 0;
                int digits = 0;
                while (p.i < p.n && p.s[p.i] >= '0' && p.s[p.i] <= '9') {
                    if (v > (SIZE_MAX - 9) / 10) { snprintf(why, wcap, "shape entry too large"); return -1; }
                    v = v * 10 + (size_t)(p.s[p.i++] - '0');
                    digits++;
                }
                if (p.i < p.n && p.s[p.i] == 'L') p.i++;   /* Python 2 longs */
                if (!digits) { snprintf(why, wcap, "unparseable shape"); return -1; }
                if (nd >= 4) { snprintf(why, wcap, "more than 4 dimensions are not supported"); return -1; }
                shape[nd++] = v;
                if (!accept(&p, ',')) {
                    if (!accept(&p, ')')) { snprintf(why, wcap, "unparseable shape"); return -1; }
                    break;
                }
            }
            *ndim = nd;
            have_shape = 1;
        } else {
            snprintf(why, wcap, "unexpected header key '%s'", key);
            return -1;
        }
        if (accept(&p, ',')) continue;
        if (accept(&p, '}')) break;
        snprintf(why, wcap, "unparseable header near byte %zu", p.i);
        return -1;
    }
    if (!have_descr || !have_fortran || !have_shape) {
        snprintf(why, wcap, "header lacks %s", !have_descr ? "'descr'" : !have_fortran ? "'fortran_order'" : "'shape'");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- reading */
static uint32_t le16(const unsigned char *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8; }
static uint32_t le32(const unsigned char *b) { return le16(b) | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

static int fail_close(cglow_npy *f, int code)
{
    cglow_npy_close(f);
    return code;
}

int cglow_npy_open(const char *path, cglow_npy **out)
{
    *out = NULL;
    if (!path || !*path) return cglow_set_error(CGLOW_EARG, "(empty path): no .npy file given");
    cglow_npy *f = calloc(1, sizeof *f);
    if (!f) return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return fail_close(f, cglow_set_error(CGLOW_EIO, "%s: cannot open: %s", path, strerror(errno)));
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return fail_close(f, cglow_set_error(CGLOW_EIO, "%s: not a regular file", path));
    size_t fsize = (size_t)st.st_size;
    unsigned char pre[12];
    ssize_t got = pread(f->fd, pre, sizeof pre, 0);
    if (got < 0) return fail_close(f, cglow_set_error(CGLOW_EIO, "%s: read error: %s", path, strerror(errno)));
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: bad magic: not a .npy file", path));
    int major = pre[6], minor = pre[7];
    size_t hstart, hlen;
    if (major == 1) { hstart = 10; hlen = le16(pre + 8); }
    else if (major == 2 || major == 3) {
        if (got < 12) return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: truncated .npy preamble", path));
        hstart = 12;
        hlen = le32(pre + 8);
    } else
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: unsupported .npy format version %d.%d", path, major, minor));
    f->version = major;
    if (hlen > NPY_MAX_HEADER)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: header length %zu is implausible", path, hlen));
    if (hstart + hlen > fsize)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: truncated: header of %zu bytes runs past the end of the file (%zu bytes)",
                                             path, hlen, fsize));
    char *text = malloc(hlen + 1);
    if (!text) return fail_close(f, cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path));
    if (pread(f->fd, text, hlen, (off_t)hstart) != (ssize_t)hlen) {
        free(text);
        return fail_close(f, cglow_set_error(CGLOW_EIO, "%s: read error in header", path));
    }
    text[hlen] = 0;
    char descr[64] = "", why[160];
    int fortran = 0;
    int rc = parse_header(text, hlen, descr, sizeof descr, &fortran, &f->ndim, f->shape, why, sizeof why);
    free(text);
    if (rc) return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: %s", path, why));
    if (!strcmp(descr, "<f4")) f->itemsize = 4;
    else if (!strcmp(descr, "<f8")) f->itemsize = 8;
    else return fail_close(f, cglow_set_error(CGLOW_ESHAPE, "%s: dtype '%s' is not supported (only '<f4' and '<f8')", path, descr));
    if (fortran)
        return fail_close(f, cglow_set_error(CGLOW_ESHAPE, "%s: Fortran-order array is not supported (save it in C order)", path));
    /* A 0-d array (a scalar, as numpy saves a loss value) reads as shape (1,). */
    if (f->ndim == 0) { f->ndim = 1; f->shape[0] = 1; }
    if (f->ndim < 1 || f->ndim > 4)
        return fail_close(f, cglow_set_error(CGLOW_ESHAPE, "%s: %d-d array is not supported (1 to 4 dimensions)", path, f->ndim));
    size_t items = 1, row = 1;
    for (int i = 0; i < f->ndim; i++) {
        if (__builtin_mul_overflow(items, f->shape[i], &items))
            return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: shape too large", path));
        if (i > 0) row *= f->shape[i];
    }
    size_t bytes;
    if (__builtin_mul_overflow(items, (size_t)f->itemsize, &bytes) || bytes > (size_t)LLONG_MAX)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: shape too large", path));
    f->n_items = items;
    f->row_items = row;
    f->data_off = hstart + hlen;
    size_t have = fsize - f->data_off;
    if (have < bytes)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: truncated: the header's shape needs %zu data bytes, the file has %zu",
                                             path, bytes, have));
    if (have > bytes)
        return fail_close(f, cglow_set_error(CGLOW_EFORMAT, "%s: header lies about the size: shape needs %zu data bytes, the file has %zu",
                                             path, bytes, have));
    f->map_len = fsize;
    f->map = mmap(NULL, fsize, PROT_READ, MAP_SHARED, f->fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return fail_close(f, cglow_set_error(CGLOW_EIO, "%s: cannot map: %s", path, strerror(errno)));
    }
    *out = f;
    return 0;
}

void cglow_npy_close(cglow_npy *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    if (f->fd >= 0) close(f->fd);
    free(f);
}

int cglow_npy_ndim(const cglow_npy *f) { return f->ndim; }
const size_t *cglow_npy_shape(const cglow_npy *f) { return f->shape; }
int cglow_npy_itemsize(const cglow_npy *f) { return f->itemsize; }
const char *cglow_npy_path(const cglow_npy *f) { return f->path; }
size_t cglow_npy_row_items(const cglow_npy *f) { return f->row_items; }

/* Pages of a big read are dropped from this process once copied, so that streaming through a
 * 3.75 GB file does not show up as 3.75 GB resident (the kernel's page cache still holds them). */
static void drop_pages(const cglow_npy *f, size_t off, size_t len)
{
    if (len < (1u << 20)) return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = (off + pg - 1) / pg * pg, b = (off + len) / pg * pg;
    if (b > a) madvise(f->map + a, b - a, MADV_DONTNEED);
}

static int range_check(const cglow_npy *f, size_t first, size_t count)
{
    if (first > f->shape[0] || count > f->shape[0] - first)
        return cglow_set_error(CGLOW_EARG, "%s: items %zu..%zu requested, axis 0 has %zu", f->path, first,
                               first + count, f->shape[0]);
    return 0;
}

/* Items first..first+count-1 into out as float (want 4) or double (want 8), converting when the
 * file holds the other width. */
static int read_items(cglow_npy *f, size_t first, size_t count, void *out, int want)
{
    int rc = range_check(f, first, count);
    if (rc) return rc;
    size_t n = count * f->row_items, off = f->data_off + first * f->row_items * (size_t)f->itemsize;
    if (n == 0) return 0;
    const unsigned char *src = f->map + off;
    if (f->itemsize == want) memcpy(out, src, n * (size_t)want);
    else if (want == 4)
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            ((float *)out)[i] = (float)v;
        }
    else
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, src + 4 * i, 4);
            ((double *)out)[i] = v;
        }
    drop_pages(f, off, n * (size_t)f->itemsize);
    return 0;
}

int cglow_npy_read_f32(cglow_npy *f, size_t first, size_t count, float *out) { return read_items(f, first, count, out, 4); }
int cglow_npy_read_f64(cglow_npy *f, size_t first, size_t count, double *out) { return read_items(f, first, count, out, 8); }

static int load_any(const char *path, int want, void **data, int *ndim, size_t shape[4])
{
    cglow_npy *f;
    int rc = cglow_npy_open(path, &f);
    if (rc) return rc;
    void *buf = malloc(f->n_items ? f->n_items * (size_t)want : 1);
    if (!buf) { cglow_npy_close(f); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    rc = want == 4 ? cglow_npy_read_f32(f, 0, f->shape[0], buf) : cglow_npy_read_f64(f, 0, f->shape[0], buf);
    if (rc) { free(buf); cglow_npy_close(f); return rc; }
    *ndim = f->ndim;
    for (int i = 0; i < 4; i++) shape[i] = i < f->ndim ? f->shape[i] : 1;
    *data = buf;
    cglow_npy_close(f);
    return 0;
}

int cglow_npy_load_f32(const char *path, float **data, int *ndim, size_t shape[4])
{
    return load_any(path, 4, (void **)data, ndim, shape);
}
int cglow_npy_load_f64(const char *path, double **data, int *ndim, size_t shape[4])
{
    return load_any(path, 8, (void **)data, ndim, shape);
}

/* ---------------------------------------------------------------- writing */
int cglow_npy_header(int version, int itemsize, int ndim, const size_t *shape, unsigned char *buf, size_t cap,
                     size_t *len)
{
    char dict[256];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f%d', 'fortran_order': False, 'shape': (", itemsize);
    for (int i = 0; i < ndim; i++) k += snprintf(dict + k, sizeof dict - (size_t)k, "%zu, ", shape[i]);
    if (ndim > 0) k -= ndim == 1 ? 1 : 2;   /* numpy writes (3,) and (3, 4) */
    k += snprintf(dict + k, sizeof dict - (size_t)k, "), }");
    size_t pre = version == 1 ? 10 : 12;
    size_t total = (pre + (size_t)k + 1 + 63) / 64 * 64;   /* header padded to 64 bytes, ends in '\n' */
    if (total > cap) return -1;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    size_t hlen = total - pre;
    buf[8] = hlen & 0xff;
    buf[9] = (hlen >> 8) & 0xff;
    if (version != 1) { buf[10] = (hlen >> 16) & 0xff; buf[11] = (hlen >> 24) & 0xff; }
    memcpy(buf + pre, dict, (size_t)k);
    memset(buf + pre + k, ' ', total - pre - (size_t)k - 1);
    buf[total - 1] = '\n';
    *len = total;
    return 0;
}

int cglow_npy_save_ex(const char *path, const void *data, int itemsize, int ndim, const size_t *shape, int version)
{
    if (ndim < 1 || ndim > 4) return cglow_set_error(CGLOW_EARG, "%s: %d dimensions (1 to 4 supported)", path, ndim);
    if (itemsize != 4 && itemsize != 8) return cglow_set_error(CGLOW_EARG, "%s: item size %d (4 or 8)", path, itemsize);
    if (version < 1 || version > 3) return cglow_set_error(CGLOW_EARG, "%s: .npy version %d (1 to 3)", path, version);
    size_t items = 1;
    for (int i = 0; i < ndim; i++) items *= shape[i];
    unsigned char hdr[512];
    size_t hl;
    if (cglow_npy_header(version, itemsize, ndim, shape, hdr, sizeof hdr, &hl))
        return cglow_set_error(CGLOW_EARG, "%s: header too long", path);
    atomic_file a;
    int rc = atomic_open(&a, path);
    if (rc) return rc;
    if (fwrite(hdr, 1, hl, a.f) != hl || (items && fwrite(data, (size_t)itemsize, items, a.f) != items)) {
        atomic_abort(&a);
        return cglow_set_error(CGLOW_EIO, "%s: write failed", path);
    }
    return atomic_commit(&a);
}

int cglow_npy_save_f32(const char *path, const float *data, int ndim, const size_t *shape)
{
    return cglow_npy_save_ex(path, data, 4, ndim, shape, 1);
}
int cglow_npy_save_f64(const char *path, const double *data, int ndim, const size_t *shape)
{
    return cglow_npy_save_ex(path, data, 8, ndim, shape, 1);
}
