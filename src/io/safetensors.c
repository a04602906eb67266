#include "io/safetensors.h"
#include "cglow.h"
#include "util/fileio.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_range(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

void st_free(st_file *f)
{
    if (!f) return;
    if (f->t)
        for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->nmeta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

#define FAIL(code, ...) do { rc = cglow_set_error(code, __VA_ARGS__); goto fail; } while (0)

int st_read(const char *path, st_file *f)
{
    memset(f, 0, sizeof *f);
    int rc = read_file_all(path, &f->buf, &f->len);
    if (rc) return rc;
    cJSON *h = NULL;
    size_t *ranges = NULL;
    if (f->len < 8) FAIL(CGLOW_EFORMAT, "%s: truncated: %zu bytes, not a safetensors file", path, f->len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)f->buf[i];
    if (hl < 2 || hl > 100000000 || hl > f->len - 8)
        FAIL(CGLOW_EFORMAT, "%s: header length %llu does not fit the file (%zu bytes): truncated or not safetensors",
             path, (unsigned long long)hl, f->len);
    h = cJSON_ParseWithLength(f->buf + 8, (size_t)hl);
    if (!h || !cJSON_IsObject(h)) FAIL(CGLOW_EFORMAT, "%s: the header is not a JSON object", path);
    const char *data = f->buf + 8 + hl;
    const size_t data_len = f->len - 8 - hl;
    int n = 0;
    for (cJSON *e = h->child; e; e = e->next) n += strcmp(e->string, "__metadata__") != 0;
    f->t = calloc(n ? n : 1, sizeof(st_tensor));
    ranges = calloc(2 * (n ? n : 1), sizeof(size_t));
    if (!f->t || !ranges) FAIL(CGLOW_ENOMEM, "%s: out of memory", path);
    for (cJSON *e = h->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) FAIL(CGLOW_EFORMAT, "%s: __metadata__ is not an object", path);
            int nm = cJSON_GetArraySize(e);
            f->meta_keys = calloc(nm ? nm : 1, sizeof(char *));
            f->meta_vals = calloc(nm ? nm : 1, sizeof(char *));
            if (!f->meta_keys || !f->meta_vals) FAIL(CGLOW_ENOMEM, "%s: out of memory", path);
            for (cJSON *kv = e->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) FAIL(CGLOW_EFORMAT, "%s: metadata '%s' is not a string", path, kv->string);
                f->meta_keys[f->nmeta] = strdup(kv->string);
                f->meta_vals[f->nmeta] = strdup(kv->valuestring);
                f->nmeta++;
            }
            continue;
        }
        st_tensor *t = &f->t[f->n];
        t->name = strdup(e->string);
        f->n++;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
            FAIL(CGLOW_EFORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", path, t->name);
        if (!strcmp(dt->valuestring, "F32")) t->dtype = ST_F32;
        else if (!strcmp(dt->valuestring, "F64")) t->dtype = ST_F64;
        else FAIL(CGLOW_ESHAPE, "%s: tensor '%s' has dtype %s (cglow reads F32 and F64)", path, t->name, dt->valuestring);
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > 8) FAIL(CGLOW_EFORMAT, "%s: tensor '%s' has %d dimensions", path, t->name, t->ndim);
        t->numel = 1;
        int k = 0;
        for (cJSON *d = sh->child; d; d = d->next, k++) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 || d->valuedouble != (double)(size_t)d->valuedouble)
                FAIL(CGLOW_EFORMAT, "%s: tensor '%s' has a bad shape", path, t->name);
            t->shape[k] = (size_t)d->valuedouble;
            t->numel *= t->shape[k];
        }
        double b0 = cJSON_GetArrayItem(of, 0)->valuedouble, b1 = cJSON_GetArrayItem(of, 1)->valuedouble;
        if (!(b0 >= 0 && b1 >= b0 && b1 <= (double)data_len))
            FAIL(CGLOW_EFORMAT, "%s: tensor '%s' has data offsets [%.0f, %.0f] outside the %zu data bytes (truncated?)",
                 path, t->name, b0, b1, data_len);
        size_t item = t->dtype == ST_F32 ? 4 : 8;
        if ((size_t)(b1 - b0) != t->numel * item)
            FAIL(CGLOW_EFORMAT, "%s: tensor '%s' has %zu bytes for %zu elements of %zu bytes", path, t->name,
                 (size_t)(b1 - b0), t->numel, item);
        ranges[2 * (f->n - 1)] = (size_t)b0;
        ranges[2 * (f->n - 1) + 1] = (size_t)b1;
        t->data = data + (size_t)b0;
    }
    /* Tensors must not overlap (the format's rule). */
    qsort(ranges, f->n, 2 * sizeof(size_t), cmp_range);
    for (int i = 1; i < f->n; i++)
        if (ranges[2 * i] < ranges[2 * i - 1]) FAIL(CGLOW_EFORMAT, "%s: tensors overlap in the data section", path);
    qsort(f->t, f->n, sizeof(st_tensor), cmp_tensor);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->t[i].name, f->t[i - 1].name)) FAIL(CGLOW_EFORMAT, "%s: tensor '%s' appears twice", path, f->t[i].name);
    cJSON_Delete(h);
    free(ranges);
    return 0;
fail:
    cJSON_Delete(h);
    free(ranges);
    st_free(f);
    return rc;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    st_tensor key = {.name = name};
    return bsearch(&key, f->t, f->n, sizeof(st_tensor), cmp_tensor);
}

void st_get_f32(const st_tensor *t, float *out)
{
    if (t->dtype == ST_F32) memcpy(out, t->data, 4 * t->numel);
    else for (size_t i = 0; i < t->numel; i++) { double v; memcpy(&v, (const char *)t->data + 8 * i, 8); out[i] = (float)v; }
}

void st_get_f64(const st_tensor *t, double *out)
{
    if (t->dtype == ST_F64) memcpy(out, t->data, 8 * t->numel);
    else for (size_t i = 0; i < t->numel; i++) { float v; memcpy(&v, (const char *)t->data + 4 * i, 4); out[i] = v; }
}

int st_write(const char *path, int n, const st_tensor *ts, int nmeta, const char *const *meta_keys,
             const char *const *meta_vals)
{
    cJSON *h = cJSON_CreateObject();
    if (!h) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    if (nmeta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
        for (int i = 0; i < nmeta; i++) cJSON_AddStringToObject(meta, meta_keys[i], meta_vals[i]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, ts[i].name);
        cJSON_AddStringToObject(e, "dtype", ts[i].dtype == ST_F32 ? "F32" : "F64");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int k = 0; k < ts[i].ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ts[i].shape[k]));
        size_t bytes = ts[i].numel * (ts[i].dtype == ST_F32 ? 4 : 8);
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!json) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    size_t hl = strlen(json), padded = (hl + 7) & ~(size_t)7;   /* data 8-byte aligned, as the Python writer */
    atomic_file a;
    int rc = atomic_open(&a, path);
    if (rc) { free(json); return rc; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, a.f) == 8 && fwrite(json, 1, hl, a.f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', a.f) != EOF;
    free(json);
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = ts[i].numel * (ts[i].dtype == ST_F32 ? 4 : 8);
        ok = fwrite(ts[i].data, 1, bytes, a.f) == bytes;
    }
    if (!ok) { atomic_abort(&a); return cglow_set_error(CGLOW_EIO, "%s: write failed", path); }
    return atomic_commit(&a);
}
