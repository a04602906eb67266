/* cJSON helpers for the science outputs. */
#include "science/sci_json.h"
#include "cglow.h"
#include "util/fileio.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

cJSON *sci_json_num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *sci_json_darray(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, sci_json_num(v[i]));
    return a;
}

int sci_json_save(const cJSON *root, const char *path)
{
    char *text = cJSON_Print(root);
    if (!text) return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory printing JSON", path);
    size_t n = strlen(text);
    text[n] = 0;
    int rc;
    /* A trailing newline makes the file friendlier to shell tools. */
    char *buf = malloc(n + 2);
    if (!buf) { free(text); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    memcpy(buf, text, n);
    buf[n] = '\n';
    rc = atomic_write_all(path, buf, n + 1);
    free(buf);
    free(text);
    return rc;
}

cJSON *sci_json_load(const char *path)
{
    char *data = NULL;
    size_t n = 0;
    if (read_file_all(path, &data, &n)) return NULL;
    cJSON *j = cJSON_ParseWithLength(data, n);
    free(data);
    if (!j) cglow_set_error(CGLOW_EFORMAT, "%s: not valid JSON", path);
    return j;
}
