/* Parameter tables, the map-to-simulation mapping, preprocessing and its inverse, the split,
 * augmentation and the loader. */
#include "cglow.h"
#include "test.h"
#include <stdint.h>

static int contains(const char *s, const char *w) { return strstr(s, w) != NULL; }

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_real_camels_table(void)
{
    cglow_table t;
    int rc = cglow_table_load(shared_path("data/params_LH_IllustrisTNG.txt"), &t);
    CHECK(rc == 0, "%s", cglow_last_error());
    if (rc) return;
    CHECK(t.rows == 1000 && t.cols == 6, "%d x %d", t.rows, t.cols);
    double lo[2] = {1e9, 1e9}, hi[2] = {-1e9, -1e9};
    for (int r = 0; r < t.rows; r++)
        for (int c = 0; c < 2; c++) {
            double v = t.v[r * 6 + c];
            lo[c] = fmin(lo[c], v);
            hi[c] = fmax(hi[c], v);
        }
    CHECK(lo[0] >= 0.1 && hi[0] <= 0.5 && hi[0] - lo[0] > 0.35, "Omega_m in [%g, %g]", lo[0], hi[0]);
    CHECK(lo[1] >= 0.6 && hi[1] <= 1.0 && hi[1] - lo[1] > 0.35, "sigma_8 in [%g, %g]", lo[1], hi[1]);
    CHECK_CLOSE(t.v[0], 0.309, 1e-12);
    CHECK_CLOSE(t.v[1], 0.979, 1e-12);
    /* Written back in the same layout, it reads back the same numbers. */
    CHECK(cglow_table_save_camels(tmp_path("params_copy.txt"), &t, "Om sigma8 SN1 AGN1 SN2 AGN2") == 0, "save");
    cglow_table u;
    CHECK(cglow_table_load(tmp_path("params_copy.txt"), &u) == 0, "reload");
    CHECK(u.rows == 1000 && u.cols == 6 && !memcmp(u.v, t.v, sizeof(double) * 6000), "round trip");
    cglow_table_free(&u);
    /* As a .npy (rows, cols). */
    size_t sh[2] = {1000, 6};
    CHECK(cglow_npy_save_f64(tmp_path("params.npy"), t.v, 2, sh) == 0, "save npy");
    CHECK(cglow_table_load(tmp_path("params.npy"), &u) == 0 && u.rows == 1000 && u.cols == 6 &&
          !memcmp(u.v, t.v, sizeof(double) * 6000), "npy table");
    cglow_table_free(&u);
    cglow_table_free(&t);
}

static void expect_table_error(const char *name, const char *text, int code, const char *word)
{
    const char *p = tmp_path(name);
    write_text(p, text);
    cglow_table t;
    int rc = cglow_table_load(p, &t);
    CHECK(rc == code, "%s: rc %d (%s)", name, rc, cglow_last_error());
    CHECK(contains(cglow_last_error(), p) && contains(cglow_last_error(), word), "%s: message '%s' lacks '%s'", name,
          cglow_last_error(), word);
    if (!rc) cglow_table_free(&t);
}

static void test_table_formats_and_errors(void)
{
    cglow_table t;
    write_text(tmp_path("nohdr.txt"), "0.3 0.8 1 1 1 1\n\n  0.2\t0.7 1 1 1 1  \n");
    CHECK(cglow_table_load(tmp_path("nohdr.txt"), &t) == 0 && t.rows == 2 && t.cols == 6 && t.v[7] == 0.7,
          "no header: %s", cglow_last_error());
    cglow_table_free(&t);
    expect_table_error("ragged.txt", "# a b\n0.3 0.8\n0.2 0.7 0.1\n", CGLOW_EFORMAT, ":3: ragged");
    expect_table_error("word.txt", "# a b\n0.3 0.8\n0.2 abc\n", CGLOW_EFORMAT, ":3: 'abc' is not a number");
    expect_table_error("nan.txt", "0.3 nan\n", CGLOW_EVALUE, ":1: column 1 is not finite");
    expect_table_error("empty.txt", "# header only\n", CGLOW_EFORMAT, "no rows");
    CHECK(cglow_table_load(tmp_path("missing.txt"), &t) == CGLOW_EIO && contains(cglow_last_error(), "missing.txt"),
          "missing file: %s", cglow_last_error());
}

/* A maps .npy of n maps h x w with positive values, for data set tests. */
static void write_maps(const char *path, size_t n, int h, int w, uint32_t seed)
{
    float *m = malloc(n * h * w * sizeof *m);
    for (size_t i = 0; i < n * h * w; i++) {
        seed = seed * 1664525u + 1013904223u;
        m[i] = (float)pow(10.0, 3 + 4.0 * (seed >> 8) / 16777216.0);
    }
    size_t sh[3] = {n, (size_t)h, (size_t)w};
    CHECK(cglow_npy_save_f32(path, m, 3, sh) == 0, "write maps");
    free(m);
}

static void test_maps_to_simulations(void)
{
    const char *mp = tmp_path("maps15000.npy"), *tp = shared_path("data/params_LH_IllustrisTNG.txt");
    write_maps(mp, 15000, 2, 2, 1);
    cglow_dataset ds;
    int rc = cglow_dataset_open(mp, tp, NULL, 0, &ds);
    CHECK(rc == 0, "%s", cglow_last_error());
    if (rc) return;
    CHECK(ds.maps_per_sim == 15 && ds.n_maps == 15000 && ds.n_cond == 2 && ds.cols[1] == 1, "mps %d", ds.maps_per_sim);
    for (int i = 0; i < 15; i++) CHECK(cglow_dataset_theta(&ds, i) == ds.params.v, "map %d -> row 0", i);
    CHECK(cglow_dataset_theta(&ds, 15) == ds.params.v + 6, "map 15 -> row 1");
    CHECK(cglow_dataset_theta(&ds, 14999) == ds.params.v + 999 * 6, "map 14999 -> row 999");
    cglow_dataset_close(&ds);
    int cols[2] = {1, 3};
    CHECK(cglow_dataset_open(mp, tp, cols, 2, &ds) == 0 && ds.cols[0] == 1 && ds.cols[1] == 3, "column choice");
    cglow_dataset_close(&ds);
    int badcols[1] = {6};
    CHECK(cglow_dataset_open(mp, tp, badcols, 1, &ds) == CGLOW_EARG && contains(cglow_last_error(), "column 6"),
          "bad column: %s", cglow_last_error());
    const char *odd = tmp_path("maps14999.npy");
    write_maps(odd, 14999, 2, 2, 2);
    CHECK(cglow_dataset_open(odd, tp, NULL, 0, &ds) == CGLOW_ESHAPE && contains(cglow_last_error(), "do not divide") &&
          contains(cglow_last_error(), "maps14999.npy"), "not divisible: %s", cglow_last_error());
}

static void test_preprocess_round_trip(void)
{
    enum { N = 3, H = 8, W = 8 };
    float raw[N * H * W], y[N * H * W], back[N * H * W];
    for (int i = 0; i < N * H * W; i++) raw[i] = (float)pow(10.0, 2 + 6.0 * ((i * 37) % 101) / 100.0);
    for (int sq = 0; sq < 2; sq++) {
        cglow_data_config d;
        cglow_data_config_default(&d, 2);
        d.squash = sq ? CGLOW_SQUASH_STANDARD : CGLOW_SQUASH_SIGMOID;
        CHECK(cglow_data_fit_maps(&d, raw, N, H, W) == 0, "fit");
        /* mu, sigma (ddof 1) by hand */
        double s = 0, s2 = 0;
        for (int i = 0; i < N * H * W; i++) s += log10(raw[i]);
        double mu = s / (N * H * W);
        for (int i = 0; i < N * H * W; i++) s2 += pow(log10(raw[i]) - mu, 2);
        CHECK_CLOSE(d.mu, mu, 1e-6);
        CHECK_CLOSE(d.sigma, sqrt(s2 / (N * H * W - 1)), 1e-6);
        CHECK(cglow_data_maps_to_model(&d, raw, N, H, W, y, "raw", 0) == 0, "to model");
        double maxerr = 0, maxrel = 0;
        cglow_data_model_to_maps(&d, y, N, H * W, 0, back);
        for (int i = 0; i < N * H * W; i++) maxerr = fmax(maxerr, fabs(back[i] - log10(raw[i])));
        cglow_data_model_to_maps(&d, y, N, H * W, 1, back);
        for (int i = 0; i < N * H * W; i++) maxrel = fmax(maxrel, fabs(back[i] / raw[i] - 1));
        CHECK(maxerr < 2e-5, "log10 round trip error %g (squash %d)", maxerr, sq);
        CHECK(maxrel < 5e-5, "linear round trip error %g", maxrel);
        if (!sq) {
            double yy = y[5], want = tanh(0.5 * (log10(raw[5]) - d.mu) / d.sigma);
            CHECK_CLOSE(yy, want, 1e-6);
        }
    }
    /* The inverse squash clamps |y| at 0.999. */
    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    float ext[2] = {1.0f, -1.0f}, u[2];
    cglow_data_model_to_maps(&d, ext, 1, 2, 0, u);
    CHECK_CLOSE(u[0], 2 * atanh(0.999), 1e-6);
    CHECK_CLOSE(u[1], -2 * atanh(0.999), 1e-6);
}

static void test_log_jacobian_finite_difference(void)
{
    for (int sq = 0; sq < 2; sq++) {
        cglow_data_config d;
        cglow_data_config_default(&d, 2);
        d.mu = 4.8;
        d.sigma = 1.3;
        d.squash = sq ? CGLOW_SQUASH_STANDARD : CGLOW_SQUASH_SIGMOID;
        const float us[5] = {1.5f, 3.9f, 4.8f, 6.2f, 9.0f};
        double total = 0, fd_total = 0;
        for (int i = 0; i < 5; i++) {
            const double h = 1e-2;
            float up = us[i] + (float)h, um = us[i] - (float)h, yp, ym, y;
            cglow_data_log10_to_model(&d, &up, 1, 1, &yp);
            cglow_data_log10_to_model(&d, &um, 1, 1, &ym);
            cglow_data_log10_to_model(&d, &us[i], 1, 1, &y);
            double fd = log(fabs((double)yp - ym) / ((double)up - um));
            double an = cglow_data_log_jacobian(&d, &y, 1);
            CHECK(fabs(fd - an) < 1e-3, "u %g: analytic %g, finite difference %g (squash %d)", us[i], an, fd, sq);
            total += an;
            fd_total += fd;
        }
        float ys[5];
        cglow_data_log10_to_model(&d, us, 1, 5, ys);
        CHECK(fabs(cglow_data_log_jacobian(&d, ys, 5) - fd_total) < 5e-3, "sum over pixels");
        CHECK_CLOSE(cglow_data_log_jacobian(&d, ys, 5), total, 1e-9);
    }
}

static void test_downsample_floor_and_bad_pixels(void)
{
    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    d.downsample = 2;
    float raw[16] = {1, 3, 10, 30, 5, 7, 50, 70, 100, 100, 0, 0, 100, 100, 0, 0}, u[4];
    CHECK(cglow_data_maps_to_log10(&d, raw, 1, 4, 4, u, "m", 0) == 0, "downsample");
    CHECK_CLOSE(u[0], log10(4.0), 1e-6);
    CHECK_CLOSE(u[1], log10(40.0), 1e-6);
    CHECK_CLOSE(u[2], 2.0, 1e-6);
    CHECK_CLOSE(u[3], -8.0, 1e-6);   /* the floor 1e-8 */
    CHECK(cglow_data_maps_to_log10(&d, raw, 1, 4, 3, u, "m.npy", 0) == CGLOW_ESHAPE && contains(cglow_last_error(), "m.npy"),
          "size not divisible: %s", cglow_last_error());
    d.floor = 0;
    CHECK(cglow_data_maps_to_log10(&d, raw, 1, 4, 4, u, "m.npy", 7) == CGLOW_EVALUE &&
          contains(cglow_last_error(), "map 7 has a non-positive pixel"), "no floor: %s", cglow_last_error());
    /* NaN and Inf are reported with the map index, whatever the floor. */
    d.floor = 1e-8;
    d.downsample = 1;
    float maps[3 * 4];
    for (int i = 0; i < 12; i++) maps[i] = 1;
    maps[9] = NAN;
    float out[12];
    CHECK(cglow_data_maps_to_model(&d, maps, 3, 2, 2, out, "x.npy", 100) == CGLOW_EVALUE &&
          contains(cglow_last_error(), "x.npy: map 102 has a NaN or infinite pixel"), "NaN: %s", cglow_last_error());
    maps[9] = 1;
    maps[2] = -INFINITY;
    CHECK(cglow_data_maps_to_model(&d, maps, 3, 2, 2, out, "x.npy", 0) == CGLOW_EVALUE &&
          contains(cglow_last_error(), "map 0 "), "-Inf: %s", cglow_last_error());
}

static void test_condition_scaling(void)
{
    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    CHECK(!strcmp(d.cond_names[0], "Omega_m") && !strcmp(d.cond_names[1], "sigma_8"), "names");
    double th[2 * 6] = {0.1, 0.6, 9, 9, 9, 9, 0.5, 1.0, 9, 9, 9, 9};
    float c[4];
    cglow_data_scale_cond(&d, th, 2, 6, NULL, c);
    CHECK(c[0] == -1 && c[1] == -1 && c[2] == 1 && c[3] == 1, "box -> [-1, 1]: %g %g %g %g", c[0], c[1], c[2], c[3]);
    double back[4];
    cglow_data_unscale_cond(&d, c, 2, back);
    CHECK_CLOSE(back[0], 0.1, 1e-7);
    CHECK_CLOSE(back[3], 1.0, 1e-7);
    float mid = 0.25f;
    double t1;
    cglow_data_config d1;
    cglow_data_config_default(&d1, 1);
    cglow_data_unscale_cond(&d1, &mid, 1, &t1);
    CHECK_CLOSE(t1, 0.35, 1e-7);
    cglow_table t = {2, 6, th};
    int cols[2] = {1, 0};
    cglow_data_fit_cond(&d, &t, cols);
    CHECK(d.cond_lo[0] == 0.6 && d.cond_hi[0] == 1.0 && d.cond_lo[1] == 0.1, "fit box from columns");
}

static void test_split(void)
{
    size_t n = 15000, *tr = malloc(n * sizeof *tr), *te = malloc(n * sizeof *te), ntr, nte;
    CHECK(cglow_split(n, 15, CGLOW_SPLIT_WITHIN_SIM, 0, 0, tr, &ntr, te, &nte) == 0, "split");
    CHECK(ntr == 13000 && nte == 2000, "%zu / %zu", ntr, nte);
    int bad = 0;
    for (size_t i = 0; i < nte; i++) bad += te[i] % 15 != 12 && te[i] % 15 != 13;
    CHECK(bad == 0 && te[0] == 12 && te[1] == 13 && te[2] == 27, "test maps are positions 12, 13");
    /* Other maps per simulation keep 2/15 of each simulation. */
    CHECK(cglow_split(300, 30, CGLOW_SPLIT_WITHIN_SIM, 0, 0, tr, &ntr, te, &nte) == 0 && nte == 40 && te[0] == 25 &&
          te[3] == 28, "30 per sim: %zu test, first %zu", nte, te[0]);
    CHECK(cglow_split(10, 1, CGLOW_SPLIT_WITHIN_SIM, 0, 0, tr, &ntr, te, &nte) == 0 && nte == 0 && ntr == 10, "1 per sim");
    /* Whole simulations held out. */
    CHECK(cglow_split(n, 15, CGLOW_SPLIT_HOLDOUT_SIMS, 0.1, 42, tr, &ntr, te, &nte) == 0 && nte == 1500 && ntr == 13500,
          "hold-out %zu", nte);
    bad = 0;
    for (size_t i = 0; i < nte; i += 15)
        for (size_t k = 0; k < 15; k++) bad += te[i + k] != te[i] + k || te[i] % 15 != 0;
    CHECK(bad == 0, "whole simulations");
    size_t first42 = te[0], *te2 = malloc(n * sizeof *te2);
    CHECK(cglow_split(n, 15, CGLOW_SPLIT_HOLDOUT_SIMS, 0.1, 42, tr, &ntr, te2, &nte) == 0 && !memcmp(te, te2, nte * sizeof *te),
          "same seed, same split");
    CHECK(cglow_split(n, 15, CGLOW_SPLIT_HOLDOUT_SIMS, 0.1, 43, tr, &ntr, te2, &nte) == 0 && memcmp(te, te2, nte * sizeof *te),
          "another seed, another split (first %zu)", first42);
    CHECK(cglow_split(100, 15, CGLOW_SPLIT_WITHIN_SIM, 0, 0, tr, &ntr, te, &nte) == CGLOW_ESHAPE, "not divisible");
    free(tr); free(te); free(te2);
}

static double sum_of(const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}
static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_augmentation(void)
{
    enum { H = 6, W = 6, N = H * W };
    float x[N], y[N], z[N], s1[N], s2[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i * 7 % 31) + 0.25f * i;
    /* A known quarter turn: np.rot90([[1, 2], [3, 4]]) = [[2, 4], [1, 3]]. */
    float a[4] = {1, 2, 3, 4}, b[4];
    cglow_augment_op rot = {0, 0, 0, 0, 1};
    cglow_augment_apply(&rot, a, b, 2, 2, 0);
    CHECK(b[0] == 2 && b[1] == 4 && b[2] == 1 && b[3] == 3, "rot90: %g %g %g %g", b[0], b[1], b[2], b[3]);
    cglow_augment_op roll = {1, 2, 0, 0, 0};
    cglow_augment_apply(&roll, x, y, H, W, 0);
    CHECK(y[1 * W + 2] == x[0] && y[0] == x[(H - 1) * W + (W - 2)], "np.roll by (1, 2)");
    cglow_augment_op flip = {0, 0, 1, 0, 0};
    cglow_augment_apply(&flip, x, y, H, W, 0);
    CHECK(y[0] == x[(H - 1) * W], "flip y");
    /* Each op, and random compositions, are permutations with an exact inverse; four turns = none. */
    cglow_augment_op ops[4] = {{3, 0, 0, 0, 0}, {0, 0, 0, 1, 0}, {0, 0, 0, 0, 1}, {0, 0, 0, 0, 3}};
    for (int k = 0; k < 14; k++) {
        cglow_augment_op op = k < 4 ? ops[k] : (cglow_augment_op){0};
        if (k >= 4) cglow_augment_draw(7, (uint64_t)k, H, W, &op);
        cglow_augment_apply(&op, x, y, H, W, 0);
        CHECK_CLOSE(sum_of(y, N), sum_of(x, N), 1e-12);
        memcpy(s1, x, sizeof x);
        memcpy(s2, y, sizeof y);
        qsort(s1, N, sizeof *s1, cmp_float);
        qsort(s2, N, sizeof *s2, cmp_float);
        CHECK(!memcmp(s1, s2, sizeof s1), "op %d is a permutation", k);
        cglow_augment_apply(&op, y, z, H, W, 1);
        CHECK(!memcmp(z, x, sizeof x), "op %d inverted exactly", k);
    }
    memcpy(y, x, sizeof x);
    for (int k = 0; k < 4; k++) { cglow_augment_apply(&rot, y, z, H, W, 0); memcpy(y, z, sizeof z); }
    CHECK(!memcmp(y, x, sizeof x), "four quarter turns");
    /* Draws cover all 8 dihedral elements and rolls differ. */
    int seen[4] = {0}, rolls = 0;
    for (int k = 0; k < 200; k++) {
        cglow_augment_op op;
        cglow_augment_draw(1, (uint64_t)k, H, W, &op);
        seen[op.rot]++;
        rolls += op.roll_x != 0;
        CHECK(op.roll_x >= 0 && op.roll_x < W && op.roll_y >= 0 && op.roll_y < H, "roll range");
    }
    CHECK(seen[0] && seen[1] && seen[2] && seen[3] && rolls > 100, "draws vary");
    cglow_augment_op r;
    cglow_augment_draw(1, 5, 4, 8, &r);
    for (int k = 0; k < 50; k++) { cglow_augment_draw(1, (uint64_t)k, 4, 8, &r); CHECK(r.rot == 0 || r.rot == 2, "non-square"); }
}

/* A small data set on disk: 6 simulations x 5 maps of 8 x 8, and its table. */
static void small_dataset(cglow_dataset *ds)
{
    write_maps(tmp_path("small.npy"), 30, 8, 8, 3);
    write_text(tmp_path("small.txt"), "# Om s8\n0.1 0.6\n0.2 0.7\n0.3 0.8\n0.4 0.9\n0.5 1.0\n0.25 0.65\n");
    CHECK(cglow_dataset_open(tmp_path("small.npy"), tmp_path("small.txt"), NULL, 0, ds) == 0, "%s", cglow_last_error());
}

/* One epoch: all batches; returns the number of maps and checks conditions against the table. */
static size_t run_epoch(cglow_loader *L, const cglow_dataset *ds, const cglow_data_config *d, size_t *order, float *xs)
{
    float x[7 * 64], c[7 * 2];
    size_t idx[7], got = 0;
    int n, rc;
    while ((rc = cglow_loader_next_batch_idx(L, x, c, &n, idx)) > 0) {
        for (int i = 0; i < n; i++) {
            float want[2];
            cglow_data_scale_cond(d, cglow_dataset_theta(ds, idx[i]), 1, ds->params.cols, ds->cols, want);
            CHECK(c[2 * i] == want[0] && c[2 * i + 1] == want[1], "condition of map %zu", idx[i]);
            if (order) order[got] = idx[i];
            if (xs) memcpy(xs + got * 64, x + i * 64, 64 * sizeof *x);
            got++;
        }
    }
    CHECK(rc == 0 && n == 0, "epoch ends with 0");
    return got;
}

static void test_loader(void)
{
    cglow_dataset ds;
    small_dataset(&ds);
    if (!ds.maps) return;
    size_t idx[30], ntr, nte, test_idx[30];
    CHECK(cglow_split(30, 5, CGLOW_SPLIT_WITHIN_SIM, 0, 0, idx, &ntr, test_idx, &nte) == 0, "split");
    CHECK(ntr == 24 && nte == 6, "5 per sim: %zu / %zu", ntr, nte);
    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    CHECK(cglow_dataset_fit(&ds, idx, ntr, &d) == 0, "fit: %s", cglow_last_error());
    CHECK(d.cond_lo[0] == 0.1 && d.cond_hi[1] == 1.0, "box fitted");
    cglow_loader_opts o;
    cglow_loader_opts_default(&o);
    o.batch = 7;
    o.seed = 11;
    cglow_loader *L, *L2, *L3;
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L) == 0, "create: %s", cglow_last_error());
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L2) == 0, "create 2");
    o.max_cache_bytes = 0;
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L3) == 0, "create uncached");
    CHECK(cglow_loader_cached(L) && !cglow_loader_cached(L3), "cache choice");
    CHECK(cglow_loader_batches_per_epoch(L) == 4 && cglow_loader_map_pixels(L) == 64 && cglow_loader_size(L) == 24, "sizes");
    size_t e0[24], e0b[24], e0c[24], e1[24];
    float x0[24 * 64], x0c[24 * 64];
    CHECK(run_epoch(L, &ds, &d, e0, x0) == 24, "epoch size");
    CHECK(run_epoch(L2, &ds, &d, e0b, NULL) == 24 && !memcmp(e0, e0b, sizeof e0), "reproducible per seed");
    CHECK(run_epoch(L3, &ds, &d, e0c, x0c) == 24 && !memcmp(e0, e0c, sizeof e0) && !memcmp(x0, x0c, sizeof x0),
          "uncached = cached");
    CHECK(cglow_loader_epoch(L) == 1, "epoch counter");
    CHECK(run_epoch(L, &ds, &d, e1, NULL) == 24 && memcmp(e0, e1, sizeof e0), "reshuffled per epoch");
    /* Each training index exactly once per epoch, no test index. */
    int count[30] = {0};
    for (int i = 0; i < 24; i++) count[e1[i]]++;
    int bad = 0;
    for (size_t i = 0; i < 30; i++) bad += count[i] != (i % 5 == 3 ? 0 : 1);
    CHECK(bad == 0, "coverage");
    /* The maps are the preprocessed maps of those indices. */
    float raw[64], want[64];
    cglow_dataset_read_maps(&ds, e0[5], 1, raw);
    cglow_data_maps_to_model(&d, raw, 1, 8, 8, want, "small", 0);
    CHECK(!memcmp(want, x0 + 5 * 64, sizeof want), "batch content");
    /* Seek reproduces epoch 1. */
    cglow_loader_seek(L2, 1, 0);
    size_t e1b[24];
    CHECK(run_epoch(L2, &ds, &d, e1b, NULL) == 24 && !memcmp(e1, e1b, sizeof e1), "seek");
    cglow_loader_free(L);
    cglow_loader_free(L2);
    cglow_loader_free(L3);
    /* Augmented: the same maps, each a permutation of its pixels; reproducible. */
    o.augment = 1;
    o.max_cache_bytes = 1 << 20;
    float xa[24 * 64], xb[24 * 64];
    size_t ea[24];
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L) == 0, "augmented");
    run_epoch(L, &ds, &d, ea, xa);
    cglow_loader_free(L);
    o.max_cache_bytes = 0;
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L) == 0, "augmented, uncached");
    run_epoch(L, &ds, &d, NULL, xb);
    cglow_loader_free(L);
    CHECK(!memcmp(ea, e0, sizeof ea) && !memcmp(xa, xb, sizeof xa), "augmentation reproducible");
    CHECK(memcmp(xa, x0, sizeof xa), "augmentation changes maps");
    for (int i = 0; i < 24; i++) {
        float p[64], q[64];
        memcpy(p, xa + i * 64, sizeof p);
        memcpy(q, x0 + i * 64, sizeof q);
        qsort(p, 64, sizeof *p, cmp_float);
        qsort(q, 64, sizeof *q, cmp_float);
        CHECK(!memcmp(p, q, sizeof p), "map %d augmented is a permutation", i);
    }
    /* drop_last and bad input. */
    o.augment = 0;
    o.drop_last = 1;
    CHECK(cglow_loader_create(&ds, &d, idx, ntr, &o, &L) == 0 && cglow_loader_batches_per_epoch(L) == 3, "drop_last");
    CHECK(run_epoch(L, &ds, &d, NULL, NULL) == 21, "drop_last epoch");
    cglow_loader_free(L);
    size_t oob = 30;
    CHECK(cglow_loader_create(&ds, &d, &oob, 1, &o, &L) == CGLOW_EARG && contains(cglow_last_error(), "small.npy"),
          "index out of range: %s", cglow_last_error());
    cglow_dataset_close(&ds);
    /* A NaN in map 17 is reported with its index when the loader preprocesses it. */
    float *m = malloc(30 * 64 * sizeof *m);
    for (int i = 0; i < 30 * 64; i++) m[i] = 1000;
    m[17 * 64 + 9] = NAN;
    size_t sh[3] = {30, 8, 8};
    cglow_npy_save_f32(tmp_path("nan.npy"), m, 3, sh);
    free(m);
    CHECK(cglow_dataset_open(tmp_path("nan.npy"), tmp_path("small.txt"), NULL, 0, &ds) == 0, "open");
    o.max_cache_bytes = 1 << 20;
    size_t all[30];
    for (size_t i = 0; i < 30; i++) all[i] = i;
    CHECK(cglow_loader_create(&ds, &d, all, 30, &o, &L) == CGLOW_EVALUE &&
          contains(cglow_last_error(), "nan.npy: map 17 has a NaN"), "NaN map: %s", cglow_last_error());
    cglow_dataset_close(&ds);
}

/* The log10-space Jacobian from the log10 map equals the one from y where y is exact, and stays
 * exact where float32 y rounds to +-1 (a floored pixel far in the tail). */
static void test_log_jacobian_from_log10(void)
{
    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    d.mu = 4.8;
    d.sigma = 1.1;
    float u[5] = {4.0f, 5.5f, 3.2f, 6.9f, 4.8f}, y[5];
    CHECK(cglow_data_log10_to_model(&d, u, 1, 5, y) == 0, "to model");
    double a = cglow_data_log_jacobian(&d, y, 5), b = cglow_data_log_jacobian_log10(&d, u, 5);
    CHECK(fabs(a - b) < 1e-6 * fabs(b), "from y %.12g, from u %.12g", a, b);
    float far[1] = {-8.0f};   /* d = -11.6: y = tanh(-5.8) */
    d.sigma = 0.5;            /* d = -25.6: float y rounds to -1 */
    double c = cglow_data_log_jacobian_log10(&d, far, 1);
    double x = fabs((-8.0 - 4.8) / 0.5 / 2), want = -2 * (x + log1p(exp(-2 * x)) - log(2.0)) - log(2.0) - log(0.5);
    CHECK(isfinite(c) && fabs(c - want) < 1e-12 * fabs(want), "far tail: %.15g, want %.15g", c, want);
}

int main(void)
{
    RUN(test_log_jacobian_from_log10);
    RUN(test_real_camels_table);
    RUN(test_table_formats_and_errors);
    RUN(test_maps_to_simulations);
    RUN(test_preprocess_round_trip);
    RUN(test_log_jacobian_finite_difference);
    RUN(test_downsample_floor_and_bad_pixels);
    RUN(test_condition_scaling);
    RUN(test_split);
    RUN(test_augmentation);
    RUN(test_loader);
    TEST_MAIN_END();
}
