/* safetensors files: 8-byte little-endian header length, JSON header, raw little-endian data.
 * Reading validates everything a corrupt or hostile file could get wrong. */
#ifndef CGLOW_SAFETENSORS_H
#define CGLOW_SAFETENSORS_H
#include <stddef.h>

typedef enum { ST_F32 = 0, ST_F64 = 1 } st_dtype;

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    size_t shape[8];
    size_t numel;
    const void *data;   /* reading: into the file buffer; writing: the caller's data */
} st_tensor;

typedef struct {
    int n;
    st_tensor *t;        /* sorted by name */
    int nmeta;
    char **meta_keys, **meta_vals;
    char *buf;           /* the whole file */
    size_t len;
} st_file;

int st_read(const char *path, st_file *f);
void st_free(st_file *f);
const char *st_meta(const st_file *f, const char *key);
const st_tensor *st_find(const st_file *f, const char *name);
/* Copies a tensor's values out as float32 / float64 (little-endian host assumed). */
void st_get_f32(const st_tensor *t, float *out);
void st_get_f64(const st_tensor *t, double *out);
/* Writes atomically. meta_keys/vals: nmeta pairs (may be 0). */
int st_write(const char *path, int n, const st_tensor *ts, int nmeta, const char *const *meta_keys,
             const char *const *meta_vals);
#endif
