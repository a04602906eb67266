/* cglow eval as a whole job: spectra of real and generated maps (marginal, or conditional on one
 * simulation), their comparison, a JSON of the numbers, the spectrum plot and a picture of maps. */
#include "cglow.h"
#include "science/sci_json.h"
#include "science/pk_internal.h"
#include "util/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cglow_eval_run_default(cglow_eval_run *r)
{
    memset(r, 0, sizeof *r);
    r->sim = -1;
    r->temperature = 1.0;
    r->tag = "eval";
    cglow_pk_options_default(&r->opt);
}

static cJSON *set_json(const cglow_pk_set *s, const char *source)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "source", source);
    cJSON_AddNumberToObject(j, "n_maps", (double)s->nmaps);
    cJSON_AddItemToObject(j, "k", sci_json_darray(s->k, (size_t)s->nbins));
    cJSON_AddItemToObject(j, "mean", sci_json_darray(s->mean, (size_t)s->nbins));
    cJSON_AddItemToObject(j, "std", sci_json_darray(s->std, (size_t)s->nbins));
    cJSON_AddItemToObject(j, "counts", sci_json_darray(s->counts, (size_t)s->nbins));
    return j;
}

/* Reads up to k maps of a file (from `first`), block-averaged by ds, as log10 pictures into out
 * (room for k maps of the file's size). */
static size_t read_log10(const char *path, size_t first, size_t k, int is_log10, int ds, float *out, int *h, int *w)
{
    cglow_npy *f;
    if (cglow_npy_open(path, &f)) return 0;
    int nd = cglow_npy_ndim(f);
    const size_t *sh = cglow_npy_shape(f);
    size_t got = 0;
    if ((nd == 3 || nd == 4) && first < sh[0] && sh[nd - 2] % (size_t)ds == 0 && sh[nd - 1] % (size_t)ds == 0) {
        int H = (int)sh[nd - 2], W = (int)sh[nd - 1];
        got = sh[0] - first < k ? sh[0] - first : k;
        float *raw = malloc(got * (size_t)H * W * sizeof *raw);
        if (!raw || cglow_npy_read_f32(f, first, got, raw)) got = 0;
        *h = H / ds;
        *w = W / ds;
        if (got) {
            if (ds > 1) sci_block_mean(raw, got, H, W, ds, is_log10, out);
            else memcpy(out, raw, got * (size_t)H * W * sizeof *out);
        }
        free(raw);
        size_t np = (size_t)*h * *w;
        if (!is_log10)
            for (size_t i = 0; i < got * np; i++) out[i] = out[i] > 0 ? log10f(out[i]) : -8.0f;
    }
    cglow_npy_close(f);
    return got;
}

int cglow_run_eval(const cglow_eval_run *r, cglow_pk_comparison *cmp_out)
{
    if (!r->real_path || !r->out_dir) return cglow_set_error(CGLOW_EARG, "eval: real maps and an output folder are required");
    if (!r->gen_path && !r->model_path) return cglow_set_error(CGLOW_EARG, "eval: give generated maps (--gen) or a model to generate them (--model)");
    int rc;
    cglow_table t = {0, 0, NULL};
    size_t N = 0, mps = 1, first = 0, count = 0, real_side = 0, gen_side = 0;
    {
        cglow_npy *f;
        if ((rc = cglow_npy_open(r->real_path, &f))) return rc;
        N = cglow_npy_shape(f)[0];
        real_side = cglow_npy_shape(f)[cglow_npy_ndim(f) - 1];
        cglow_npy_close(f);
        if (r->gen_path) {
            if ((rc = cglow_npy_open(r->gen_path, &f))) return rc;
            gen_side = cglow_npy_shape(f)[cglow_npy_ndim(f) - 1];
            cglow_npy_close(f);
        } else {
            cglow_model *m;
            if ((rc = cglow_model_load(r->model_path, &m))) return rc;
            gen_side = (size_t)cglow_model_config(m)->width;
            cglow_model_free(m);
        }
    }
    /* Real maps larger than the generated ones by an integer factor (CAMELS 256 against a 64 model)
     * are block-averaged to the same grid first, as the model's preprocessing does. */
    int ds = r->opt.downsample > 1 ? r->opt.downsample : 1;
    if (ds == 1 && gen_side && real_side > gen_side && real_side % gen_side == 0) {
        ds = (int)(real_side / gen_side);
        fprintf(stderr, "eval: real maps %zux%zu block-averaged by %d to the generated maps' %zux%zu\n", real_side, real_side, ds,
                gen_side, gen_side);
    }
    if (r->params_path) {
        if ((rc = cglow_table_load(r->params_path, &t))) return rc;
        if (t.rows < 1 || t.cols < 2 || N % (size_t)t.rows) {
            rc = cglow_set_error(CGLOW_ESHAPE, "%s: %d x %d table does not fit the %zu maps of %s (one row per map or per simulation)",
                                 r->params_path, t.rows, t.cols, N, r->real_path);
            cglow_table_free(&t);
            return rc;
        }
        mps = N / (size_t)t.rows;
    }
    if (r->sim >= 0) {
        if (!r->params_path) return cglow_set_error(CGLOW_EARG, "eval: --sim needs the parameter table (--params)");
        if (r->sim >= t.rows) {
            rc = cglow_set_error(CGLOW_EARG, "%s: simulation %ld out of range (%d rows)", r->params_path, r->sim, t.rows);
            cglow_table_free(&t);
            return rc;
        }
        first = (size_t)r->sim * mps;
        count = mps;
    }
    cglow_pk_set real, gen;
    memset(&gen, 0, sizeof gen);
    cglow_pk_options o = r->opt;
    o.input_log10 = r->real_log10;
    o.downsample = ds;
    if ((rc = cglow_pk_set_from_npy(r->real_path, &o, first, count, NULL, 0, &real))) { cglow_table_free(&t); return rc; }
    o.downsample = 1;

    char path[4096], gen_npy[4096] = "";
    const char *gen_src = r->gen_path;
    int gen_log10 = r->gen_log10;
    if (!r->gen_path) {
        /* Generate: at the simulation's parameters, or at the parameters of randomly drawn real maps. */
        cglow_model *m = NULL;
        if (!r->params_path) rc = cglow_set_error(CGLOW_EARG, "eval: generating with a model needs the parameter table of the real maps (--params)");
        if (!rc) rc = cglow_model_load(r->model_path, &m);
        size_t ng = r->n_gen > 0 ? (size_t)r->n_gen : real.nmaps;
        const cglow_config *cfg = m ? cglow_model_config(m) : NULL;
        int P = cfg ? cfg->cond_features : 2;
        if (!rc && t.cols < P) rc = cglow_set_error(CGLOW_ESHAPE, "%s: the model needs %d parameter columns", r->params_path, P);
        double *theta = rc ? NULL : malloc(ng * P * sizeof *theta);
        float *x = rc ? NULL : malloc(ng * (size_t)cfg->height * cfg->width * sizeof *x);
        if (!rc && (!theta || !x)) rc = cglow_set_error(CGLOW_ENOMEM, "eval: out of memory for %zu generated maps", ng);
        if (!rc) {
            rng_t g;
            rng_seed2(&g, r->seed, 0xe7a1);
            for (size_t i = 0; i < ng; i++) {
                size_t row = r->sim >= 0 ? (size_t)r->sim : (size_t)rng_below(&g, N) / mps;
                for (int j = 0; j < P; j++) theta[i * P + j] = t.v[row * t.cols + j];
            }
            size_t bad = 0;
            rc = cglow_sample_maps(m, theta, (int)ng, 1, (float)r->temperature, r->seed, 0, x, &bad);
            if (!rc && bad) fprintf(stderr, "eval: warning: %zu of %zu generated maps have non-finite pixels\n", bad, ng);
            snprintf(gen_npy, sizeof gen_npy, "%s/%s_gen.npy", r->out_dir, r->tag);
            size_t shape[3] = {ng, (size_t)cfg->height, (size_t)cfg->width};
            if (!rc) rc = cglow_npy_save_f32(gen_npy, x, 3, shape);
            gen_src = gen_npy;
            gen_log10 = 1;
        }
        free(theta);
        free(x);
        cglow_model_free(m);
    }
    if (!rc) {
        o.input_log10 = gen_log10;
        rc = cglow_pk_set_from_npy(gen_src, &o, 0, 0, NULL, 0, &gen);
    }
    cglow_pk_comparison cmp;
    memset(&cmp, 0, sizeof cmp);
    if (!rc) rc = cglow_pk_compare(&real, &gen, &cmp);
    if (!rc) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "mode", r->sim >= 0 ? "conditional" : "marginal");
        if (r->sim >= 0) {
            cJSON_AddNumberToObject(root, "sim", (double)r->sim);
            cJSON_AddItemToObject(root, "params", sci_json_darray(t.v + (size_t)r->sim * t.cols, 2));
        }
        cJSON_AddStringToObject(root, "binning", cglow_pk_binning_name(o.binning));
        cJSON_AddStringToObject(root, "field", cglow_pk_field_name(o.field));
        cJSON_AddNumberToObject(root, "box", o.box);
        cJSON_AddNumberToObject(root, "real_downsample", ds);
        cJSON_AddItemToObject(root, "real", set_json(&real, r->real_path));
        cJSON_AddItemToObject(root, "gen", set_json(&gen, gen_src));
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToObject(c, "r2_log10", sci_json_num(cmp.r2_log10));
        cJSON_AddItemToObject(c, "r2_linear", sci_json_num(cmp.r2_linear));
        cJSON_AddItemToObject(c, "mean_abs_log10_ratio_mean", sci_json_num(cmp.mean_abs_log10_ratio_mean));
        cJSON_AddItemToObject(c, "mean_abs_log10_ratio_std", sci_json_num(cmp.mean_abs_log10_ratio_std));
        cJSON_AddItemToObject(c, "ratio_mean", sci_json_darray(cmp.ratio_mean, (size_t)cmp.nbins));
        cJSON_AddItemToObject(c, "ratio_std", sci_json_darray(cmp.ratio_std, (size_t)cmp.nbins));
        cJSON_AddItemToObject(root, "comparison", c);
        snprintf(path, sizeof path, "%s/%s.json", r->out_dir, r->tag);
        rc = sci_json_save(root, path);
        cJSON_Delete(root);
    }
    if (!rc) {
        char title[512];
        if (r->sim >= 0)
            snprintf(title, sizeof title, "simulation %ld (Om %.3f, s8 %.3f): %zu real vs %zu generated", r->sim, t.v[(size_t)r->sim * t.cols],
                     t.v[(size_t)r->sim * t.cols + 1], real.nmaps, gen.nmaps);
        else
            snprintf(title, sizeof title, "%zu real vs %zu generated maps", real.nmaps, gen.nmaps);
        snprintf(path, sizeof path, "%s/%s.png", r->out_dir, r->tag);
        if (cglow_plot_pk(path, &real, &gen, title)) fprintf(stderr, "eval: warning: %s\n", cglow_last_error());
        /* Maps: 4 real over 4 generated, same colour scale. */
        int h = 0, w = 0, h2 = 0, w2 = 0;
        size_t side = real_side > (size_t)gen.side ? real_side : (size_t)gen.side;
        float *pic = malloc(8 * side * side * sizeof *pic);
        if (pic) {
            size_t a = read_log10(r->real_path, first, 4, r->real_log10, ds, pic, &h, &w);
            size_t b = a ? read_log10(gen_src, 0, 4, gen_log10, 1, pic + a * (size_t)h * w, &h2, &w2) : 0;
            snprintf(path, sizeof path, "%s/%s_maps.png", r->out_dir, r->tag);
            if (a && b && h == h2 && w == w2 && cglow_image_maps(path, pic, a + b, h, w, (int)a, 3, 0, 0, CGLOW_CMAP_VIRIDIS))
                fprintf(stderr, "eval: warning: %s\n", cglow_last_error());
            free(pic);
        }
        fprintf(stderr, "eval (%s): R^2 log10 %.4f, linear %.4f; mean |log10 ratio| mean %.4f, std %.4f\n", r->tag, cmp.r2_log10,
                cmp.r2_linear, cmp.mean_abs_log10_ratio_mean, cmp.mean_abs_log10_ratio_std);
    }
    if (!rc && cmp_out) *cmp_out = cmp;
    else cglow_pk_comparison_free(&cmp);
    cglow_pk_set_free(&real);
    cglow_pk_set_free(&gen);
    cglow_table_free(&t);
    return rc;
}
