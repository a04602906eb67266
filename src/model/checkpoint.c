/* Model checkpoints (model.md section 4): safetensors with the spec's tensor names and
 * metadata format / format_version / config / data / train. */
#include "model/backend.h"
#include "io/safetensors.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *config_json(const cglow_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "height", c->height);
    cJSON_AddNumberToObject(o, "width", c->width);
    cJSON_AddNumberToObject(o, "levels", c->levels);
    cJSON_AddNumberToObject(o, "steps", c->steps);
    cJSON_AddNumberToObject(o, "hidden", c->hidden);
    cJSON_AddNumberToObject(o, "cond_features", c->cond_features);
    cJSON_AddStringToObject(o, "prior", c->prior == CGLOW_PRIOR_LEARNED ? "learned" : "conditional");
    cJSON_AddNumberToObject(o, "prior_hidden", c->prior_hidden);
    cJSON_AddNumberToObject(o, "coupling_clamp", c->coupling_clamp);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *data_json(const cglow_data_config *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "downsample", d->downsample);
    cJSON_AddNumberToObject(o, "floor", d->floor);
    cJSON_AddNumberToObject(o, "mu", d->mu);
    cJSON_AddNumberToObject(o, "sigma", d->sigma);
    cJSON_AddStringToObject(o, "squash", d->squash == CGLOW_SQUASH_STANDARD ? "standard" : "sigmoid");
    cJSON *names = cJSON_AddArrayToObject(o, "cond_names");
    cJSON *lo = cJSON_AddArrayToObject(o, "cond_lo"), *hi = cJSON_AddArrayToObject(o, "cond_hi");
    for (int j = 0; j < d->n_cond; j++) {
        cJSON_AddItemToArray(names, cJSON_CreateString(d->cond_names[j]));
        cJSON_AddItemToArray(lo, cJSON_CreateNumber(d->cond_lo[j]));
        cJSON_AddItemToArray(hi, cJSON_CreateNumber(d->cond_hi[j]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int cglow_model_save(const cglow_model *m, const char *path)
{
    st_tensor *ts = calloc(m->ntensors, sizeof(st_tensor));
    float *buf = malloc(sizeof(float) * (m->nparams ? m->nparams : 1));
    char *cfg = config_json(&m->cfg), *dat = data_json(&m->data);
    int rc = 0;
    if (!ts || !buf || !cfg || !dat) { rc = cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); goto done; }
    if ((rc = model_sync_host(m))) goto done;   /* parameters trained on a device */
    for (size_t i = 0; i < m->nparams; i++) buf[i] = (float)m->params[i];
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_entry *t = &m->tensors[i];
        ts[i].name = t->info.name;
        ts[i].dtype = ST_F32;
        ts[i].ndim = t->info.ndim;
        for (int k = 0; k < t->info.ndim; k++) ts[i].shape[k] = t->info.shape[k];
        ts[i].numel = t->info.size;
        ts[i].data = buf + t->off;
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%d", CGLOW_FORMAT_VERSION);
    const char *keys[5] = {"format", "format_version", "config", "data", "train"};
    const char *vals[5] = {"cglow", ver, cfg, dat, m->train_state};
    rc = st_write(path, m->ntensors, ts, m->train_state ? 5 : 4, keys, vals);
done:
    free(ts);
    free(buf);
    free(cfg);
    free(dat);
    return rc;
}

static int get_int(cJSON *o, const char *key, int *out, int required, const char *path)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return required ? cglow_set_error(CGLOW_EFORMAT, "%s: config lacks '%s'", path, key) : 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble)
        return cglow_set_error(CGLOW_EFORMAT, "%s: config '%s' is not an integer", path, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int parse_config(const char *json, cglow_config *c, const char *path)
{
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) { cJSON_Delete(o); return cglow_set_error(CGLOW_EFORMAT, "%s: metadata 'config' is not a JSON object", path); }
    cglow_config_preset(c, "higlow");
    int rc = 0;
    static const char *ints[] = {"in_channels", "height", "width", "levels", "steps", "hidden", "cond_features", "prior_hidden"};
    int *dst[] = {&c->in_channels, &c->height, &c->width, &c->levels, &c->steps, &c->hidden, &c->cond_features, &c->prior_hidden};
    for (int i = 0; i < 8 && !rc; i++) rc = get_int(o, ints[i], dst[i], 1, path);
    cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prior"), *cl = cJSON_GetObjectItemCaseSensitive(o, "coupling_clamp");
    if (!rc && (!cJSON_IsString(pr) || (strcmp(pr->valuestring, "conditional") && strcmp(pr->valuestring, "learned"))))
        rc = cglow_set_error(CGLOW_EFORMAT, "%s: config 'prior' must be \"conditional\" or \"learned\"", path);
    if (!rc) c->prior = !strcmp(pr->valuestring, "learned") ? CGLOW_PRIOR_LEARNED : CGLOW_PRIOR_CONDITIONAL;
    if (!rc && !cJSON_IsNumber(cl)) rc = cglow_set_error(CGLOW_EFORMAT, "%s: config lacks 'coupling_clamp'", path);
    if (!rc) c->coupling_clamp = (float)cl->valuedouble;
    cJSON_Delete(o);
    if (!rc && cglow_config_validate(c))
        rc = cglow_set_error(CGLOW_EFORMAT, "%s: %s", path, cglow_last_error());
    return rc;
}

static int parse_data(const char *json, cglow_data_config *d, int P, const char *path)
{
    cglow_data_config_default(d, P);
    if (!json) return 0;
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) { cJSON_Delete(o); return cglow_set_error(CGLOW_EFORMAT, "%s: metadata 'data' is not a JSON object", path); }
    int rc = 0;
    cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "downsample")) && cJSON_IsNumber(v)) d->downsample = (int)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "floor")) && cJSON_IsNumber(v)) d->floor = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "mu")) && cJSON_IsNumber(v)) d->mu = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "sigma")) && cJSON_IsNumber(v)) d->sigma = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "squash")) && cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "sigmoid")) d->squash = CGLOW_SQUASH_SIGMOID;
        else if (!strcmp(v->valuestring, "standard")) d->squash = CGLOW_SQUASH_STANDARD;
        else rc = cglow_set_error(CGLOW_EFORMAT, "%s: data 'squash' is '%s' (sigmoid or standard)", path, v->valuestring);
    }
    cJSON *names = cJSON_GetObjectItemCaseSensitive(o, "cond_names");
    cJSON *lo = cJSON_GetObjectItemCaseSensitive(o, "cond_lo"), *hi = cJSON_GetObjectItemCaseSensitive(o, "cond_hi");
    if (!rc && lo && hi) {
        if (!cJSON_IsArray(lo) || !cJSON_IsArray(hi) || cJSON_GetArraySize(lo) != P || cJSON_GetArraySize(hi) != P)
            rc = cglow_set_error(CGLOW_EFORMAT, "%s: data cond_lo/cond_hi must be lists of %d numbers", path, P);
        for (int j = 0; j < P && !rc; j++) {
            d->cond_lo[j] = cJSON_GetArrayItem(lo, j)->valuedouble;
            d->cond_hi[j] = cJSON_GetArrayItem(hi, j)->valuedouble;
            if (!(d->cond_hi[j] > d->cond_lo[j]))
                rc = cglow_set_error(CGLOW_EFORMAT, "%s: data cond_hi[%d] <= cond_lo[%d]", path, j, j);
        }
    }
    if (!rc && cJSON_IsArray(names))
        for (int j = 0; j < P && j < cJSON_GetArraySize(names); j++) {
            cJSON *s = cJSON_GetArrayItem(names, j);
            if (cJSON_IsString(s)) snprintf(d->cond_names[j], sizeof d->cond_names[j], "%s", s->valuestring);
        }
    if (!rc && (!(d->sigma > 0) || !isfinite(d->mu) || d->downsample < 1 || !(d->floor >= 0)))
        rc = cglow_set_error(CGLOW_EFORMAT, "%s: data has a bad sigma, mu, downsample or floor", path);
    cJSON_Delete(o);
    return rc;
}

int cglow_model_load(const char *path, cglow_model **out)
{
    *out = NULL;
    st_file f;
    int rc = st_read(path, &f);
    if (rc) return rc;
    cglow_model *m = NULL;
    const char *fmt = st_meta(&f, "format"), *ver = st_meta(&f, "format_version"), *cfg = st_meta(&f, "config");
    if (!fmt || strcmp(fmt, "cglow")) { rc = cglow_set_error(CGLOW_EFORMAT, "%s: not a cglow checkpoint (metadata format is '%s')", path, fmt ? fmt : "missing"); goto fail; }
    if (!ver) { rc = cglow_set_error(CGLOW_EFORMAT, "%s: metadata lacks format_version", path); goto fail; }
    char *end;
    long v = strtol(ver, &end, 10);
    if (*end || end == ver || v != CGLOW_FORMAT_VERSION) {
        rc = cglow_set_error(CGLOW_EFORMAT, "%s: checkpoint format version %s is not supported (this cglow reads version %d)", path, ver, CGLOW_FORMAT_VERSION);
        goto fail;
    }
    if (!cfg) { rc = cglow_set_error(CGLOW_EFORMAT, "%s: metadata lacks config", path); goto fail; }
    cglow_config c;
    if ((rc = parse_config(cfg, &c, path))) goto fail;
    if ((rc = model_alloc(&c, &m))) { rc = cglow_set_error(rc, "%s: %s", path, cglow_last_error()); goto fail; }
    if ((rc = parse_data(st_meta(&f, "data"), &m->data, c.cond_features, path))) goto fail;
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_entry *te = &m->tensors[i];
        const st_tensor *t = st_find(&f, te->info.name);
        if (!t) { rc = cglow_set_error(CGLOW_ESHAPE, "%s: tensor '%s' is missing", path, te->info.name); goto fail; }
        int same = t->ndim == te->info.ndim;
        for (int k = 0; same && k < t->ndim; k++) same = t->shape[k] == (size_t)te->info.shape[k];
        if (!same) {
            char want[64] = "", got[64] = "";
            for (int k = 0; k < te->info.ndim; k++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", k ? "," : "", te->info.shape[k]);
            for (int k = 0; k < t->ndim && k < 8; k++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", k ? "," : "", t->shape[k]);
            rc = cglow_set_error(CGLOW_ESHAPE, "%s: tensor '%s' has shape [%s], the config needs [%s]", path, te->info.name, got, want);
            goto fail;
        }
        real *dst = m->params + te->off;
        for (size_t k = 0; k < t->numel; k++) {
            double val;
            if (t->dtype == ST_F32) { float fv; memcpy(&fv, (const char *)t->data + 4 * k, 4); val = fv; }
            else memcpy(&val, (const char *)t->data + 8 * k, 8);
            if (!isfinite(val)) { rc = cglow_set_error(CGLOW_EVALUE, "%s: tensor '%s' has a non-finite value at %zu", path, te->info.name, k); goto fail; }
            dst[k] = (real)val;
        }
    }
    if (f.n != m->ntensors)
        for (int i = 0; i < f.n; i++)
            if (model_find_tensor(m, f.t[i].name) < 0) {
                rc = cglow_set_error(CGLOW_ESHAPE, "%s: unexpected tensor '%s' (not in this config)", path, f.t[i].name);
                goto fail;
            }
    const char *tr = st_meta(&f, "train");
    if (tr) m->train_state = strdup(tr);
    model_params_changed(m);
    st_free(&f);
    *out = m;
    return 0;
fail:
    st_free(&f);
    cglow_model_free(m);
    return rc;
}
