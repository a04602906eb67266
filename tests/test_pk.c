/* Power spectrum (model.md section 5): known answers and brute-force checks of the binning. */
#include "cglow.h"
#include "test.h"
#include "util/rng.h"
#include <complex.h>

static const double LBOX = 25.0;

static void opts(cglow_pk_options *o, cglow_pk_binning b)
{
    cglow_pk_options_default(o);
    o->binning = b;
    o->field = CGLOW_FIELD_RAW;
}

static float *random_map(int n, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    float *m = malloc((size_t)n * n * sizeof *m);
    /* Asymmetric: a gradient in x only plus noise, so no symmetry hides a transposition bug. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) m[i * n + j] = (float)(rng_normal(&r) + 0.3 * i + 0.05 * i * j / n);
    return m;
}

/* Brute force: O(n^4) DFT, each conjugate pair {k, -k} counted once for "pylians" (all modes for
 * "higlow"); bins and k computed from the full plane without the r2c layout. */
typedef struct { double cnt[200], ksum[200], psum[200]; } brute;
static void brute_force(const float *f, int n, int higlow, brute *B)
{
    memset(B, 0, sizeof *B);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int ci = (n - i) % n, cj = (n - j) % n;
            if (!higlow && (i * n + j) > (ci * n + cj)) continue;   /* the partner is counted */
            double complex F = 0;
            for (int x = 0; x < n; x++)
                for (int y = 0; y < n; y++)
                    F += f[x * n + y] * cexp(-2.0 * I * M_PI * ((double)i * x + (double)j * y) / n);
            int kx = i <= n / 2 ? i : i - n, ky = j <= n / 2 ? j : j - n;
            double k = sqrt((double)kx * kx + (double)ky * ky);
            int b = higlow ? (int)lround(k) : (int)floor(k);
            if (b == 0) continue;
            B->cnt[b] += 1;
            B->ksum[b] += k;
            B->psum[b] += LBOX * LBOX / pow(n, 4) * creal(F * conj(F));
        }
}

static void check_against_brute(int n, cglow_pk_binning bin, int check_power)
{
    float *m = random_map(n, 42 + n);
    cglow_pk_options o;
    opts(&o, bin);
    cglow_pk_set s;
    CHECK(cglow_pk_set_from_maps(m, 1, n, &o, &s, "test") == 0, "%s", cglow_last_error());
    brute B;
    if (check_power) brute_force(m, n, bin == CGLOW_BIN_HIGLOW, &B);
    else {
        /* Counts and k only: the same enumeration without the DFT. */
        memset(&B, 0, sizeof B);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int ci = (n - i) % n, cj = (n - j) % n;
                if (bin == CGLOW_BIN_PYLIANS && (i * n + j) > (ci * n + cj)) continue;
                int kx = i <= n / 2 ? i : i - n, ky = j <= n / 2 ? j : j - n;
                double k = sqrt((double)kx * kx + (double)ky * ky);
                int b = bin == CGLOW_BIN_HIGLOW ? (int)lround(k) : (int)floor(k);
                if (b) { B.cnt[b] += 1; B.ksum[b] += k; }
            }
    }
    double kF = 2 * M_PI / LBOX;
    int nonempty = 0;
    for (int b = 1; b < 200; b++) nonempty += B.cnt[b] > 0;
    CHECK(s.nbins == nonempty, "n=%d: %d bins, brute force %d", n, s.nbins, nonempty);
    int maxbin = bin == CGLOW_BIN_PYLIANS ? (int)sqrt(2.0 * (n / 2) * (n / 2)) : n - 1;
    for (int c = 0; c < s.nbins; c++) {
        int b = s.bin[c];
        CHECK(b >= 1 && b <= maxbin, "bin %d", b);
        CHECK(s.counts[c] == B.cnt[b], "n=%d bin %d: counts %g vs %g", n, b, s.counts[c], B.cnt[b]);
        double kref = bin == CGLOW_BIN_HIGLOW ? b * kF : B.ksum[b] / B.cnt[b] * kF;
        CHECK_CLOSE(s.k[c], kref, 1e-12);
        if (check_power) CHECK_CLOSE(s.mean[c] / (B.psum[b] / B.cnt[b]), 1.0, 2e-4);
    }
    if (bin == CGLOW_BIN_PYLIANS) {
        /* Pylians' independent mode count: (n^2 - own) / 2 + own, own = 4 (n even) or 1, DC included. */
        double tot = 1;
        for (int c = 0; c < s.nbins; c++) tot += s.counts[c];
        int own = n % 2 ? 1 : 4;
        CHECK(tot == (n * n - own) / 2 + own, "n=%d: %g modes", n, tot);
    }
    cglow_pk_set_free(&s);
    free(m);
}

static void test_pylians_bins_brute_small(void)
{
    check_against_brute(16, CGLOW_BIN_PYLIANS, 1);
    check_against_brute(15, CGLOW_BIN_PYLIANS, 1);
}
static void test_higlow_bins_brute_small(void)
{
    check_against_brute(16, CGLOW_BIN_HIGLOW, 1);
    check_against_brute(13, CGLOW_BIN_HIGLOW, 1);
}
static void test_bins_brute_n64(void)
{
    check_against_brute(64, CGLOW_BIN_PYLIANS, 0);
    check_against_brute(64, CGLOW_BIN_HIGLOW, 0);
    cglow_pk_options o;
    opts(&o, CGLOW_BIN_PYLIANS);
    cglow_pk *p;
    CHECK(cglow_pk_create(64, &o, &p) == 0, "%s", cglow_last_error());
    CHECK(cglow_pk_nbins(p) == 45, "pylians n=64: %d bins, want 45", cglow_pk_nbins(p));
    cglow_pk_free(p);
    opts(&o, CGLOW_BIN_HIGLOW);
    CHECK(cglow_pk_create(64, &o, &p) == 0, "%s", cglow_last_error());
    /* round(|k|) reaches 45 (|k| max 45.25); bins 46..63 are empty and omitted. */
    CHECK(cglow_pk_nbins(p) == 45 && cglow_pk_bin_index(p)[44] == 45, "higlow n=64: %d bins", cglow_pk_nbins(p));
    cglow_pk_free(p);
}

/* A cosine of amplitude A at mode (a, b) puts Lbox^2 A^2 / 4 (mean x count) in bin floor(|k|). */
static void test_cosine_mode(void)
{
    int n = 64;
    const int modes[][2] = {{3, 5}, {4, 0}, {0, 7}, {-6, 2}, {20, -17}};
    for (int t = 0; t < 5; t++) {
        int a = modes[t][0], bb = modes[t][1];
        double A = 1.7;
        float *m = malloc((size_t)n * n * sizeof *m);
        for (int x = 0; x < n; x++)
            for (int y = 0; y < n; y++) m[x * n + y] = (float)(A * cos(2 * M_PI * (a * x + bb * y) / n));
        cglow_pk_options o;
        opts(&o, CGLOW_BIN_PYLIANS);
        cglow_pk_set s;
        CHECK(cglow_pk_set_from_maps(m, 1, n, &o, &s, "cos") == 0, "%s", cglow_last_error());
        int want = (int)sqrt((double)a * a + (double)bb * bb);
        double expect = LBOX * LBOX * A * A / 4;
        for (int c = 0; c < s.nbins; c++) {
            double tot = s.mean[c] * s.counts[c];
            if (s.bin[c] == want) CHECK_CLOSE(tot / expect, 1.0, 1e-5);
            else CHECK(tot < 1e-8 * expect, "mode (%d,%d): bin %d has %g", a, bb, s.bin[c], tot);
        }
        cglow_pk_set_free(&s);
        free(m);
    }
}

/* Parseval: sum over all modes k != 0 of P / Lbox^2 = variance of the field (ddof 0). */
static void test_parseval(void)
{
    int sizes[] = {64, 33};
    for (int t = 0; t < 2; t++) {
        int n = sizes[t];
        float *m = random_map(n, 7);
        double mean = 0, var = 0;
        for (int i = 0; i < n * n; i++) mean += m[i];
        mean /= n * n;
        for (int i = 0; i < n * n; i++) var += (m[i] - mean) * (m[i] - mean);
        var /= n * n;
        cglow_pk_options o;
        opts(&o, CGLOW_BIN_HIGLOW);
        cglow_pk_set s;
        CHECK(cglow_pk_set_from_maps(m, 1, n, &o, &s, "parseval") == 0, "%s", cglow_last_error());
        double sum = 0, tot = 0;
        for (int c = 0; c < s.nbins; c++) { sum += s.mean[c] * s.counts[c]; tot += s.counts[c]; }
        CHECK(tot == n * n - 1, "higlow n=%d counts %g", n, tot);
        CHECK_CLOSE(sum / (LBOX * LBOX) / var, 1.0, 1e-5);
        cglow_pk_set_free(&s);
        free(m);
    }
}

/* The field options: log10 of linear maps (and of maps given in log10 units) and the overdensity. */
static void test_fields(void)
{
    int n = 32;
    float *f = random_map(n, 3), *lin = malloc((size_t)n * n * sizeof *lin), *d = malloc((size_t)n * n * sizeof *d);
    double mean = 0;
    for (int i = 0; i < n * n; i++) { lin[i] = powf(10.0f, f[i] * 0.2f); mean += lin[i]; }
    mean /= n * n;
    for (int i = 0; i < n * n; i++) { d[i] = (float)(lin[i] / mean - 1); f[i] = log10f(lin[i]); }
    cglow_pk_options raw, o;
    opts(&raw, CGLOW_BIN_PYLIANS);
    cglow_pk_set a, b;
    cglow_pk_options_default(&o);
    CHECK(cglow_pk_set_from_maps(f, 1, n, &raw, &a, "t") == 0, "%s", cglow_last_error());
    CHECK(cglow_pk_set_from_maps(lin, 1, n, &o, &b, "t") == 0, "%s", cglow_last_error());
    for (int c = 0; c < a.nbins; c++) CHECK_CLOSE(b.mean[c] / a.mean[c], 1.0, 1e-4);
    cglow_pk_set_free(&b);
    o.input_log10 = 1;
    CHECK(cglow_pk_set_from_maps(f, 1, n, &o, &b, "t") == 0, "%s", cglow_last_error());
    for (int c = 0; c < a.nbins; c++) CHECK_CLOSE(b.mean[c] / a.mean[c], 1.0, 1e-6);
    cglow_pk_set_free(&a); cglow_pk_set_free(&b);
    o.input_log10 = 0;
    o.field = CGLOW_FIELD_OVERDENSITY;
    CHECK(cglow_pk_set_from_maps(d, 1, n, &raw, &a, "t") == 0, "%s", cglow_last_error());
    CHECK(cglow_pk_set_from_maps(lin, 1, n, &o, &b, "t") == 0, "%s", cglow_last_error());
    for (int c = 0; c < a.nbins; c++) CHECK_CLOSE(b.mean[c] / a.mean[c], 1.0, 1e-4);
    cglow_pk_set_free(&a); cglow_pk_set_free(&b);
    free(f); free(lin); free(d);
}

/* mean and std over maps (ddof 0): maps k * base have P = k^2 P_base. */
static void test_set_stats(void)
{
    int n = 16;
    float *base = random_map(n, 5), *maps = malloc(3 * (size_t)n * n * sizeof *maps);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < n * n; i++) maps[k * n * n + i] = (float)(k + 1) * base[i];
    cglow_pk_options o;
    opts(&o, CGLOW_BIN_PYLIANS);
    cglow_pk_set s1, s3;
    CHECK(cglow_pk_set_from_maps(base, 1, n, &o, &s1, "t") == 0, "%s", cglow_last_error());
    CHECK(cglow_pk_set_from_maps(maps, 3, n, &o, &s3, "t") == 0, "%s", cglow_last_error());
    double m = (1 + 4 + 9) / 3.0, sd = sqrt(((1 - m) * (1 - m) + (4 - m) * (4 - m) + (9 - m) * (9 - m)) / 3);
    for (int c = 0; c < s1.nbins; c++) {
        CHECK_CLOSE(s3.mean[c] / s1.mean[c], m, 1e-5);
        CHECK_CLOSE(s3.std[c] / s1.mean[c], sd, 1e-5);
    }
    /* Comparison: gen = 3 maps, real = 1 map. */
    cglow_pk_comparison cmp;
    CHECK(cglow_pk_compare(&s1, &s3, &cmp) == 0, "%s", cglow_last_error());
    CHECK_CLOSE(cmp.ratio_mean[0], m, 1e-5);
    CHECK_CLOSE(cmp.mean_abs_log10_ratio_mean, log10(m), 1e-5);
    cglow_pk_comparison_free(&cmp);
    cglow_pk_set_free(&s1); cglow_pk_set_free(&s3);
    free(base); free(maps);
}

static void test_r2_known(void)
{
    double r[] = {1, 2, 3, 4}, g[] = {1, 2, 3, 5};
    CHECK_CLOSE(cglow_r2(r, g, 4, 0), 1 - 1.0 / 5.0, 1e-12);
    CHECK_CLOSE(cglow_r2(r, r, 4, 0), 1.0, 1e-15);
    double lr[4], lg[4], mr = 0, res = 0, tot = 0;
    for (int i = 0; i < 4; i++) { lr[i] = log10(r[i]); lg[i] = log10(g[i]); mr += lr[i] / 4; }
    for (int i = 0; i < 4; i++) { res += (lg[i] - lr[i]) * (lg[i] - lr[i]); tot += (lr[i] - mr) * (lr[i] - mr); }
    CHECK_CLOSE(cglow_r2(r, g, 4, 1), 1 - res / tot, 1e-12);
    double c[] = {2, 2, 2};
    CHECK(isnan(cglow_r2(c, r, 3, 0)), "constant real: NaN");
    double neg[] = {1, -1, 2, 3};
    CHECK(isnan(cglow_r2(r, neg, 4, 1)), "negative under log10: NaN");
}

static void test_bad_input(void)
{
    int n = 8;
    float *m = random_map(n, 1);
    m[3 * n + 5] = NAN;
    cglow_pk_options o;
    opts(&o, CGLOW_BIN_PYLIANS);
    cglow_pk_set s;
    CHECK(cglow_pk_set_from_maps(m, 1, n, &o, &s, "bad.npy") == CGLOW_EVALUE, "NaN pixel");
    CHECK(strstr(cglow_last_error(), "bad.npy") && strstr(cglow_last_error(), "(3, 5)"), "%s", cglow_last_error());
    for (int i = 0; i < n * n; i++) m[i] = 0;
    o.field = CGLOW_FIELD_OVERDENSITY;
    CHECK(cglow_pk_set_from_maps(m, 1, n, &o, &s, "zero.npy") == CGLOW_EVALUE, "zero-mean overdensity");
    o.box = -1;
    cglow_pk *p;
    CHECK(cglow_pk_create(8, &o, &p) == CGLOW_EARG, "negative box");
    cglow_pk_options_default(&o);
    CHECK(cglow_pk_create(1, &o, &p) == CGLOW_ESHAPE, "side 1");
    cglow_pk_binning b;
    CHECK(cglow_pk_parse_binning("nope", &b) == CGLOW_EARG, "bad binning");
    free(m);
}

int main(void)
{
    (void)tmp_path; (void)shared_path;  /* test.h helpers this test does not need */
    RUN(test_pylians_bins_brute_small);
    RUN(test_higlow_bins_brute_small);
    RUN(test_bins_brute_n64);
    RUN(test_cosine_mode);
    RUN(test_parseval);
    RUN(test_fields);
    RUN(test_set_stats);
    RUN(test_r2_known);
    RUN(test_bad_input);
    TEST_MAIN_END();
}
