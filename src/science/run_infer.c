/* Whole inference jobs on files: cglow infer and cglow calibrate (and the demo). */
#include "cglow.h"
#include "science/sci_json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cglow_infer_run_default(cglow_infer_run *r)
{
    memset(r, 0, sizeof *r);
    r->beta = 0.3;
    r->synth_box = 25.0;
    r->G = 30;
    r->n_png = 4;
    r->progress = 1;
}

static const double CAMELS_LO[2] = {0.1, 0.6}, CAMELS_HI[2] = {0.5, 1.0};

/* Everything one run holds. */
typedef struct {
    float *maps;
    size_t n;
    int h, w;
    double *truth;
    cglow_model *model;
    cglow_grid grid;
} job;

static void job_free(job *j)
{
    free(j->maps);
    free(j->truth);
    cglow_model_free(j->model);
    memset(j, 0, sizeof *j);
}

static int path_join(char *buf, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) return cglow_set_error(CGLOW_EARG, "%s: path too long", dir);
    return 0;
}

static int load_job(const cglow_infer_run *r, int need_truth, job *j)
{
    memset(j, 0, sizeof *j);
    if (!r->maps_path || !r->out_dir) return cglow_set_error(CGLOW_EARG, "infer: maps and output folder are required");
    if (need_truth && !r->truth_path) return cglow_set_error(CGLOW_EARG, "calibrate: the true parameters (--truth) are required");
    int nd, rc;
    size_t sh[4] = {0};
    float *all = NULL;
    if ((rc = cglow_npy_load_f32(r->maps_path, &all, &nd, sh))) return rc;
    if (!(nd == 3 || (nd == 4 && sh[1] == 1)) || sh[0] == 0) {
        free(all);
        return cglow_set_error(CGLOW_ESHAPE, "%s: expected maps of shape (N, H, W) or (N, 1, H, W)", r->maps_path);
    }
    size_t N = sh[0];
    j->h = (int)sh[nd - 2];
    j->w = (int)sh[nd - 1];
    if (r->first >= N) { free(all); return cglow_set_error(CGLOW_EARG, "%s: first map %zu out of range (%zu maps)", r->maps_path, r->first, N); }
    j->n = r->count ? r->count : N - r->first;
    if (j->n > N - r->first) { free(all); return cglow_set_error(CGLOW_EARG, "%s: maps %zu..%zu out of range (%zu maps)", r->maps_path, r->first, r->first + j->n - 1, N); }
    size_t np = (size_t)j->h * j->w;
    if (r->first == 0 && j->n == N) j->maps = all;
    else {
        j->maps = malloc(j->n * np * sizeof *j->maps);
        if (!j->maps) { free(all); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", r->maps_path); }
        memcpy(j->maps, all + r->first * np, j->n * np * sizeof *j->maps);
        free(all);
    }
    if (r->truth_path) {
        cglow_table t;
        if ((rc = cglow_table_load(r->truth_path, &t))) { job_free(j); return rc; }
        if (t.cols < 2 || t.rows < 1 || N % (size_t)t.rows) {
            rc = cglow_set_error(CGLOW_ESHAPE, "%s: %d x %d table: need >= 2 columns and one row per map or per simulation of the %zu maps in %s",
                                 r->truth_path, t.rows, t.cols, N, r->maps_path);
            cglow_table_free(&t);
            job_free(j);
            return rc;
        }
        size_t per = N / (size_t)t.rows;
        j->truth = malloc(2 * j->n * sizeof *j->truth);
        if (!j->truth) { cglow_table_free(&t); job_free(j); return cglow_set_error(CGLOW_ENOMEM, "out of memory"); }
        for (size_t i = 0; i < j->n; i++)
            for (int a = 0; a < 2; a++) j->truth[2 * i + a] = t.v[((r->first + i) / per) * t.cols + a];
        cglow_table_free(&t);
    }
    if (r->model_path && (rc = cglow_model_load(r->model_path, &j->model))) { job_free(j); return rc; }
    if (j->model && r->device && (rc = cglow_model_set_device(j->model, r->device))) { job_free(j); return rc; }
    const double *lo = CAMELS_LO, *hi = CAMELS_HI;
    if (r->box_set) { lo = r->lo; hi = r->hi; }
    else if (j->model) {
        cglow_data_config *d = cglow_model_data(j->model);
        if (d->n_cond < 2) { job_free(j); return cglow_set_error(CGLOW_ESHAPE, "%s: the model has %d conditions, inference needs 2", r->model_path, d->n_cond); }
        lo = d->cond_lo;
        hi = d->cond_hi;
    }
    if ((rc = cglow_grid_init(&j->grid, r->G, lo, hi, r->edges))) { job_free(j); return rc; }
    if (r->exact && j->h != j->w) { job_free(j); return cglow_set_error(CGLOW_ESHAPE, "%s: the exact likelihood needs square maps", r->maps_path); }
    return 0;
}

/* Posteriors of all maps with one scorer (flow if use_model, else exact). */
static int run_scorer(const cglow_infer_run *r, job *j, int use_model, double *post, cglow_post_summary *s)
{
    cglow_infer_options io;
    memset(&io, 0, sizeof io);
    io.grid = j->grid;
    io.truth = j->truth;
    io.progress = r->progress;
    int rc;
    if (use_model) {
        cglow_model_scorer ms;
        memset(&ms, 0, sizeof ms);
        ms.model = j->model;
        ms.maps = j->maps;
        ms.nmaps = j->n;
        ms.h = j->h;
        ms.w = j->w;
        ms.what = r->maps_path;
        rc = cglow_infer(&io, cglow_model_scorer_fn, &ms, j->n, post, s);
        cglow_model_scorer_free(&ms);
    } else {
        cglow_exact_scorer es;
        memset(&es, 0, sizeof es);
        cglow_synth_opts_default(&es.opt, j->h);
        es.opt.beta = r->beta;
        es.opt.box = r->synth_box;
        es.maps = j->maps;
        es.nmaps = j->n;
        es.what = r->maps_path;
        es.grid = &j->grid;
        io.parallel_maps = 1;
        rc = cglow_infer(&io, cglow_exact_scorer_fn, &es, j->n, post, s);
    }
    return rc;
}

/* posterior<suffix>.npy, summary<suffix>.json, posterior<suffix>_NNN.png, calibration<suffix>.png. */
static int write_outputs(const cglow_infer_run *r, const job *j, const char *suffix, const char *scorer, const double *post,
                         const cglow_post_summary *s, cglow_calibration *cal_out, int *have_cal)
{
    char path[4096], name[256];
    int G = j->grid.G, rc;
    size_t shape[3] = {j->n, (size_t)G, (size_t)G};
    snprintf(name, sizeof name, "posterior%s.npy", suffix);
    if ((rc = path_join(path, sizeof path, r->out_dir, name)) || (rc = cglow_npy_save_f64(path, post, 3, shape))) return rc;
    cglow_calibration cal;
    *have_cal = j->truth && cglow_calibrate(s, (int)j->n, &cal) == 0;
    if (*have_cal && cal_out) *cal_out = cal;
    snprintf(name, sizeof name, "summary%s.json", suffix);
    if ((rc = path_join(path, sizeof path, r->out_dir, name)) ||
        (rc = cglow_infer_save_json(path, &j->grid, s, post, j->n, *have_cal ? &cal : NULL, scorer)))
        return rc;
    for (int m = 0; m < r->n_png && (size_t)m < j->n; m++) {
        char title[256];
        snprintf(name, sizeof name, "posterior%s_%03d.png", suffix, m);
        snprintf(title, sizeof title, "map %zu, %s posterior", r->first + (size_t)m, scorer);
        if ((rc = path_join(path, sizeof path, r->out_dir, name))) return rc;
        if (cglow_plot_posterior(path, &j->grid, post + (size_t)m * G * G, &s[m], title)) {
            fprintf(stderr, "cglow: warning: %s\n", cglow_last_error());
            break;   /* no gnuplot: no further pictures either */
        }
    }
    if (*have_cal) {
        char title[256];
        snprintf(name, sizeof name, "calibration%s.png", suffix);
        snprintf(title, sizeof title, "%s posterior calibration", scorer);
        if ((rc = path_join(path, sizeof path, r->out_dir, name))) return rc;
        if (cglow_plot_calibration(path, &cal, title)) fprintf(stderr, "cglow: warning: %s\n", cglow_last_error());
    }
    return 0;
}

static void print_calibration(const char *scorer, const cglow_calibration *c)
{
    fprintf(stderr, "%s: %d maps: 68%% HPD coverage %.3f +- %.3f, 95%% %.3f +- %.3f; bias/std Om %.2f sigma8 %.2f\n", scorer, c->n,
            c->coverage[0], c->cov_err[0], c->coverage[1], c->cov_err[1], c->bias_mean[0], c->bias_mean[1]);
}

int cglow_run_infer(const cglow_infer_run *r)
{
    if (!!r->model_path == !!r->exact)
        return cglow_set_error(CGLOW_EARG, "infer: give exactly one scorer: a model (--model) or the exact synthetic likelihood (--exact)");
    job j;
    int rc = load_job(r, 0, &j);
    if (rc) return rc;
    size_t GG = (size_t)j.grid.G * j.grid.G;
    double *post = malloc(j.n * GG * sizeof *post);
    cglow_post_summary *s = calloc(j.n, sizeof *s);
    if (!post || !s) rc = cglow_set_error(CGLOW_ENOMEM, "infer: out of memory for %zu posteriors", j.n);
    const char *scorer = r->model_path ? "flow" : "exact";
    if (!rc) rc = run_scorer(r, &j, r->model_path != NULL, post, s);
    int have_cal = 0;
    cglow_calibration cal;
    if (!rc) rc = write_outputs(r, &j, "", scorer, post, s, &cal, &have_cal);
    if (!rc && have_cal) print_calibration(scorer, &cal);
    free(post);
    free(s);
    job_free(&j);
    return rc;
}

int cglow_run_calibrate(const cglow_infer_run *r)
{
    if (!r->model_path && !r->exact)
        return cglow_set_error(CGLOW_EARG, "calibrate: give a model (--model), the exact likelihood (--exact), or both");
    job j;
    int rc = load_job(r, 1, &j);
    if (rc) return rc;
    size_t GG = (size_t)j.grid.G * j.grid.G;
    double *post[2] = {NULL, NULL};
    cglow_post_summary *s[2] = {NULL, NULL};
    cglow_calibration cal[2];
    int have[2] = {0, 0}, ran[2] = {r->model_path != NULL, r->exact};
    const char *names[2] = {"flow", "exact"}, *suffix[2] = {"_flow", "_exact"};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "grid", sci_grid_json(&j.grid));
    cJSON_AddStringToObject(root, "maps", r->maps_path);
    cJSON_AddStringToObject(root, "truth", r->truth_path);
    for (int k = 0; k < 2 && !rc; k++) {
        if (!ran[k]) continue;
        post[k] = malloc(j.n * GG * sizeof *post[k]);
        s[k] = calloc(j.n, sizeof *s[k]);
        if (!post[k] || !s[k]) { rc = cglow_set_error(CGLOW_ENOMEM, "calibrate: out of memory"); break; }
        if (r->progress) fprintf(stderr, "calibrate: %s posteriors of %zu maps on a %dx%d grid\n", names[k], j.n, j.grid.G, j.grid.G);
        rc = run_scorer(r, &j, k == 0, post[k], s[k]);
        if (!rc) rc = write_outputs(r, &j, suffix[k], names[k], post[k], s[k], &cal[k], &have[k]);
        if (!rc && have[k]) {
            print_calibration(names[k], &cal[k]);
            cJSON_AddItemToObject(root, names[k], sci_calibration_json(&cal[k]));
        }
    }
    if (!rc && ran[0] && ran[1]) {
        /* Flow against exact, map by map. */
        cJSON *per = cJSON_CreateArray();
        double sh[2] = {0, 0}, ash[2] = {0, 0}, wr[2] = {0, 0}, kl = 0;
        double *kls = malloc(j.n * sizeof *kls);
        size_t nfin = 0;
        for (size_t m = 0; m < j.n && !rc; m++) {
            cglow_post_comparison c;
            rc = cglow_posterior_compare(&j.grid, post[1] + m * GG, post[0] + m * GG, &c);
            if (rc) break;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "shift", sci_json_darray(c.shift, 2));
            cJSON_AddItemToObject(o, "width_ratio", sci_json_darray(c.width_ratio, 2));
            cJSON_AddItemToObject(o, "kl", sci_json_num(c.kl));
            cJSON_AddItemToArray(per, o);
            for (int a = 0; a < 2; a++) { sh[a] += c.shift[a] / j.n; ash[a] += fabs(c.shift[a]) / j.n; wr[a] += c.width_ratio[a] / j.n; }
            if (kls) kls[m] = c.kl;
            if (isfinite(c.kl)) { kl += c.kl; nfin++; }
        }
        for (int m = 0; m < r->n_png && (size_t)m < j.n && !rc; m++) {
            char path[4096], name[64], t1[128], t2[128];
            snprintf(name, sizeof name, "posterior_pair_%03d.png", m);
            snprintf(t1, sizeof t1, "map %zu: exact posterior", r->first + (size_t)m);
            snprintf(t2, sizeof t2, "map %zu: flow posterior", r->first + (size_t)m);
            rc = path_join(path, sizeof path, r->out_dir, name);
            if (!rc && cglow_plot_posterior_pair(path, &j.grid, post[1] + m * GG, &s[1][m], t1, post[0] + m * GG, &s[0][m], t2)) {
                fprintf(stderr, "cglow: warning: %s\n", cglow_last_error());
                break;
            }
        }
        cJSON *cmp = cJSON_CreateObject();
        cJSON_AddStringToObject(cmp, "definition", "q = flow posterior, p = exact posterior: shift = (mean_q - mean_p) / std_p, width_ratio = std_q / std_p, kl = KL(p || q) nats on the grid");
        cJSON_AddItemToObject(cmp, "mean_shift", sci_json_darray(sh, 2));
        cJSON_AddItemToObject(cmp, "mean_abs_shift", sci_json_darray(ash, 2));
        cJSON_AddItemToObject(cmp, "mean_width_ratio", sci_json_darray(wr, 2));
        cJSON_AddItemToObject(cmp, "mean_kl", sci_json_num(nfin ? kl / nfin : NAN));
        cJSON_AddNumberToObject(cmp, "maps_with_infinite_kl", (double)(j.n - nfin));
        cJSON_AddItemToObject(cmp, "per_map", per);
        cJSON_AddItemToObject(root, "flow_vs_exact", cmp);
        if (!rc)
            fprintf(stderr, "flow vs exact: mean |shift| Om %.2f sigma8 %.2f (exact std), width ratio %.2f %.2f, mean KL %.3f nats\n",
                    ash[0], ash[1], wr[0], wr[1], nfin ? kl / nfin : NAN);
        free(kls);
    }
    if (!rc) {
        char path[4096];
        rc = path_join(path, sizeof path, r->out_dir, "calibration.json");
        if (!rc) rc = sci_json_save(root, path);
    }
    cJSON_Delete(root);
    for (int k = 0; k < 2; k++) { free(post[k]); free(s[k]); }
    job_free(&j);
    return rc;
}
