/* Parameter tables: CAMELS text layout ('#' header optional, whitespace separated, one row per
 * simulation) or a .npy of shape (rows, cols). */
#include "cglow.h"
#include "util/fileio.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_npy(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char b[6] = {0};
    size_t got = fread(b, 1, 6, f);
    fclose(f);
    return got == 6 && !memcmp(b, "\x93NUMPY", 6);
}

static int load_npy_table(const char *path, cglow_table *t)
{
    double *v;
    int nd;
    size_t sh[4];
    int rc = cglow_npy_load_f64(path, &v, &nd, sh);
    if (rc) return rc;
    if (nd > 2 || sh[0] > (size_t)1 << 30 || (nd == 2 && sh[1] > 1024)) {
        free(v);
        return cglow_set_error(CGLOW_ESHAPE, "%s: a parameter table must be (rows, cols), got %d-d", path, nd);
    }
    t->rows = (int)sh[0];
    t->cols = nd == 2 ? (int)sh[1] : 1;
    t->v = v;
    if (t->rows == 0 || t->cols == 0) {
        cglow_table_free(t);
        return cglow_set_error(CGLOW_ESHAPE, "%s: empty parameter table", path);
    }
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->cols; c++)
            if (!isfinite(t->v[(size_t)r * t->cols + c])) {
                cglow_table_free(t);
                return cglow_set_error(CGLOW_EVALUE, "%s: row %d column %d is not finite", path, r, c);
            }
    return 0;
}

int cglow_table_load(const char *path, cglow_table *t)
{
    memset(t, 0, sizeof *t);
    if (is_npy(path)) return load_npy_table(path, t);
    char *text;
    size_t len;
    int rc = read_file_all(path, &text, &len);
    if (rc) return rc;
    if (memchr(text, 0, len)) {
        free(text);
        return cglow_set_error(CGLOW_EFORMAT, "%s: binary file, not a parameter table", path);
    }
    size_t cap = 0, n = 0;
    double *v = NULL;
    int cols = -1, rows = 0, lineno = 0;
    char *save = NULL;
    for (char *line = text; line; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        int c = 0;
        for (;;) {
            while (isspace((unsigned char)*p)) p++;
            if (!*p) break;
            char *end;
            double x = strtod(p, &end);
            if (end == p || (*end && !isspace((unsigned char)*end))) {
                char tok[32];
                size_t k = 0;
                while (p[k] && !isspace((unsigned char)p[k]) && k + 1 < sizeof tok) { tok[k] = p[k]; k++; }
                tok[k] = 0;
                free(v); free(text);
                return cglow_set_error(CGLOW_EFORMAT, "%s:%d: '%s' is not a number", path, lineno, tok);
            }
            if (!isfinite(x)) {
                free(v); free(text);
                return cglow_set_error(CGLOW_EVALUE, "%s:%d: column %d is not finite", path, lineno, c);
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                double *nv = realloc(v, cap * sizeof *v);
                if (!nv) { free(v); free(text); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
                v = nv;
            }
            v[n++] = x;
            c++;
            p = end;
        }
        if (cols < 0) cols = c;
        else if (c != cols) {
            free(v); free(text);
            return cglow_set_error(CGLOW_EFORMAT, "%s:%d: ragged row: %d columns, expected %d", path, lineno, c, cols);
        }
        rows++;
    }
    free(text);
    if (rows == 0) { free(v); return cglow_set_error(CGLOW_EFORMAT, "%s: no rows in the parameter table", path); }
    t->rows = rows;
    t->cols = cols;
    t->v = v;
    return 0;
}

/* Shortest of "%.5f" (CAMELS' own format) and "%.17g" that reads back exactly. */
static void fmt_value(char *buf, size_t cap, double x)
{
    snprintf(buf, cap, "%.5f", x);
    if (strtod(buf, NULL) != x) snprintf(buf, cap, "%.17g", x);
}

int cglow_table_save_camels(const char *path, const cglow_table *t, const char *header)
{
    atomic_file a;
    int rc = atomic_open(&a, path);
    if (rc) return rc;
    if (header) fprintf(a.f, "%s%s\n", header[0] == '#' ? "" : "# ", header);
    char buf[64];
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->cols; c++) {
            fmt_value(buf, sizeof buf, t->v[(size_t)r * t->cols + c]);
            fprintf(a.f, "%s%c", buf, c + 1 == t->cols ? '\n' : ' ');
        }
    return atomic_commit(&a);
}

void cglow_table_free(cglow_table *t)
{
    free(t->v);
    t->v = NULL;
    t->rows = t->cols = 0;
}
