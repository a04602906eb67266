/* Sets of spectra: per-map P(k) of many maps, mean and std (ddof 0) per bin, and their JSON. */
#include "cglow.h"
#include "science/sci_json.h"
#include "science/pk_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cglow_pk_set_free(cglow_pk_set *s)
{
    if (!s) return;
    free(s->bin); free(s->k); free(s->counts); free(s->mean); free(s->std); free(s->pk);
    memset(s, 0, sizeof *s);
}

/* Allocates a set with the bins of plan p for nmaps maps. */
int sci_pk_set_alloc(cglow_pk_set *s, const cglow_pk *p, int side, size_t nmaps, const cglow_pk_options *o)
{
    memset(s, 0, sizeof *s);
    int nb = cglow_pk_nbins(p);
    size_t nbz = nb ? (size_t)nb : 1;
    s->opt = *o;
    s->side = side;
    s->nbins = nb;
    s->nmaps = nmaps;
    s->bin = malloc(nbz * sizeof *s->bin);
    s->k = malloc(nbz * sizeof *s->k);
    s->counts = malloc(nbz * sizeof *s->counts);
    s->mean = calloc(nbz, sizeof *s->mean);
    s->std = calloc(nbz, sizeof *s->std);
    s->pk = malloc((nmaps ? nmaps : 1) * nbz * sizeof *s->pk);
    if (!s->bin || !s->k || !s->counts || !s->mean || !s->std || !s->pk) {
        cglow_pk_set_free(s);
        return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory for %zu maps", nmaps);
    }
    memcpy(s->bin, cglow_pk_bin_index(p), (size_t)nb * sizeof *s->bin);
    memcpy(s->k, cglow_pk_k(p), (size_t)nb * sizeof *s->k);
    memcpy(s->counts, cglow_pk_counts(p), (size_t)nb * sizeof *s->counts);
    return 0;
}

/* Mean and std (ddof 0) over maps, two passes for accuracy. */
void sci_pk_set_stats(cglow_pk_set *s)
{
    int nb = s->nbins;
    for (int b = 0; b < nb; b++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < s->nmaps; i++) m += s->pk[i * nb + b];
        m = s->nmaps ? m / s->nmaps : NAN;
        for (size_t i = 0; i < s->nmaps; i++) v += (s->pk[i * nb + b] - m) * (s->pk[i * nb + b] - m);
        s->mean[b] = m;
        s->std[b] = s->nmaps ? sqrt(v / s->nmaps) : NAN;
    }
}

int cglow_pk_set_from_maps(const float *maps, size_t nmaps, int side, const cglow_pk_options *o, cglow_pk_set *s,
                           const char *what)
{
    memset(s, 0, sizeof *s);
    if (nmaps == 0) return cglow_set_error(CGLOW_ESHAPE, "%s: no maps", what ? what : "pk");
    cglow_pk *p;
    int rc = cglow_pk_create(side, o, &p);
    if (rc) return rc;
    rc = sci_pk_set_alloc(s, p, side, nmaps, o);
    if (!rc) rc = cglow_pk_compute(p, maps, nmaps, s->pk, what, 0);
    cglow_pk_free(p);
    if (rc) { cglow_pk_set_free(s); return rc; }
    sci_pk_set_stats(s);
    return 0;
}

int cglow_pk_set_save_json(const cglow_pk_set *s, const char *path, int per_map)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    int nb = s->nbins;
    double *bins = malloc((size_t)(nb ? nb : 1) * sizeof *bins);
    if (!bins) { cJSON_Delete(root); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    for (int b = 0; b < nb; b++) bins[b] = s->bin[b];
    cJSON_AddItemToObject(root, "k", sci_json_darray(s->k, (size_t)nb));
    cJSON_AddItemToObject(root, "mean", sci_json_darray(s->mean, (size_t)nb));
    cJSON_AddItemToObject(root, "std", sci_json_darray(s->std, (size_t)nb));
    cJSON_AddItemToObject(root, "counts", sci_json_darray(s->counts, (size_t)nb));
    cJSON_AddItemToObject(root, "bin", sci_json_darray(bins, (size_t)nb));
    free(bins);
    cJSON_AddNumberToObject(root, "n_maps", (double)s->nmaps);
    cJSON_AddNumberToObject(root, "side", s->side);
    cJSON_AddNumberToObject(root, "box", s->opt.box);
    cJSON_AddNumberToObject(root, "downsample", s->opt.downsample > 1 ? s->opt.downsample : 1);
    cJSON_AddNumberToObject(root, "kF", 2 * M_PI / s->opt.box);
    cJSON_AddStringToObject(root, "binning", cglow_pk_binning_name(s->opt.binning));
    cJSON_AddStringToObject(root, "field", cglow_pk_field_name(s->opt.field));
    cJSON_AddStringToObject(root, "units", "k in h/Mpc (kF = 2 pi / box), P in (Mpc/h)^2, std over maps ddof 0");
    if (per_map) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < s->nmaps; i++) cJSON_AddItemToArray(a, sci_json_darray(s->pk + i * nb, (size_t)nb));
        cJSON_AddItemToObject(root, "pk", a);
    }
    int rc = sci_json_save(root, path);
    cJSON_Delete(root);
    return rc;
}
