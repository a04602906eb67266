/* The 2-D power spectrum of model.md section 5 (FFTW single precision, r2c).
 *
 * P of one mode = Lbox^2 / n^4 |F_k|^2 with F the unnormalised DFT of the field.
 * "pylians" binning reproduces Pylians3's Pk_plane exactly: the loop over the r2c half plane
 * (kyy = 0 .. n/2), where the rows ky = 0 and (n even) ky = n/2 keep only kx >= 0, so that each
 * independent mode is counted once; kx = kxx - n for kxx > n/2 (so kx = +n/2 at the Nyquist row);
 * bin int(|k| / kF); bins 1 .. int(sqrt(2) * (n/2)) (bin 0, the DC mode, dropped); k of a bin =
 * mean |k| of its modes (times kF).
 * "higlow" binning: all n^2 modes (the r2c half weighted by its Hermitian partners), bin
 * round(|k| / kF), k = bin * kF, bins 1 .. n - 1; empty bins are omitted. */
#include "cglow.h"
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct cglow_pk {
    int n, nc;               /* side, r2c columns n/2 + 1 */
    cglow_pk_options opt;
    int nbins;
    int *mode_bin;           /* n * nc: compact bin of each r2c mode, -1 = not counted */
    double *mode_w;          /* n * nc: weight (1 or 2 for the Hermitian partner) */
    int *bin;                /* nbins: integer bin */
    double *k, *counts;
    fftwf_plan plan;
    float *plan_in;
    fftwf_complex *plan_out;
};

void cglow_pk_options_default(cglow_pk_options *o)
{
    o->box = 25.0;
    o->binning = CGLOW_BIN_PYLIANS;
    o->field = CGLOW_FIELD_LOG10;
    o->input_log10 = 0;
    o->floor = 1e-8;
    o->downsample = 1;
}

int cglow_pk_parse_binning(const char *s, cglow_pk_binning *b)
{
    if (!strcmp(s, "pylians")) *b = CGLOW_BIN_PYLIANS;
    else if (!strcmp(s, "higlow")) *b = CGLOW_BIN_HIGLOW;
    else return cglow_set_error(CGLOW_EARG, "unknown binning '%s' (pylians or higlow)", s);
    return 0;
}

int cglow_pk_parse_field(const char *s, cglow_pk_field *f)
{
    if (!strcmp(s, "log10")) *f = CGLOW_FIELD_LOG10;
    else if (!strcmp(s, "overdensity")) *f = CGLOW_FIELD_OVERDENSITY;
    else if (!strcmp(s, "raw")) *f = CGLOW_FIELD_RAW;
    else return cglow_set_error(CGLOW_EARG, "unknown field '%s' (log10, overdensity or raw)", s);
    return 0;
}

const char *cglow_pk_binning_name(cglow_pk_binning b) { return b == CGLOW_BIN_HIGLOW ? "higlow" : "pylians"; }
const char *cglow_pk_field_name(cglow_pk_field f)
{
    return f == CGLOW_FIELD_OVERDENSITY ? "overdensity" : f == CGLOW_FIELD_RAW ? "raw" : "log10";
}

void cglow_pk_free(cglow_pk *p)
{
    if (!p) return;
    if (p->plan) fftwf_destroy_plan(p->plan);
    fftwf_free(p->plan_in);
    fftwf_free(p->plan_out);
    free(p->mode_bin); free(p->mode_w); free(p->bin); free(p->k); free(p->counts);
    free(p);
}

/* Builds the mode -> bin table with integer (raw) bins, then compacts to non-empty bins. */
static int build_bins(cglow_pk *p)
{
    int n = p->n, nc = p->nc, middle = n / 2;
    int maxbin = p->opt.binning == CGLOW_BIN_PYLIANS ? (int)sqrt(2.0 * middle * middle) : n - 1;
    double *ksum = calloc((size_t)maxbin + 1, sizeof *ksum), *cnt = calloc((size_t)maxbin + 1, sizeof *cnt);
    int *raw = malloc((size_t)n * nc * sizeof *raw), *compact = malloc(((size_t)maxbin + 1) * sizeof *compact);
    if (!ksum || !cnt || !raw || !compact) {
        free(ksum); free(cnt); free(raw); free(compact);
        return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory");
    }
    for (int kxx = 0; kxx < n; kxx++) {
        int kx = kxx > middle ? kxx - n : kxx;
        for (int kyy = 0; kyy < nc; kyy++) {
            size_t m = (size_t)kxx * nc + kyy;
            int ky = kyy;  /* kyy <= n/2 in the r2c half */
            double kk = sqrt((double)kx * kx + (double)ky * ky);
            int b;
            double w = 1.0;
            if (p->opt.binning == CGLOW_BIN_PYLIANS) {
                int edge_row = ky == 0 || (ky == middle && n % 2 == 0);
                b = (edge_row && kx < 0) ? -1 : (int)kk;
            } else {
                /* Columns 0 and (n even) n/2 hold all their modes; the others stand for
                 * themselves and their conjugates in the missing half. */
                w = (kyy == 0 || (n % 2 == 0 && kyy == middle)) ? 1.0 : 2.0;
                b = (int)floor(kk + 0.5);   /* no ties: sqrt of an integer is never x.5 */
            }
            if (b < 1 || b > maxbin) b = -1;   /* DC dropped */
            raw[m] = b;
            p->mode_w[m] = w;
            if (b >= 1) { ksum[b] += w * kk; cnt[b] += w; }
        }
    }
    int nb = 0;
    for (int b = 1; b <= maxbin; b++) compact[b] = cnt[b] > 0 ? nb++ : -1;
    p->nbins = nb;
    p->bin = malloc((size_t)(nb ? nb : 1) * sizeof *p->bin);
    p->k = malloc((size_t)(nb ? nb : 1) * sizeof *p->k);
    p->counts = malloc((size_t)(nb ? nb : 1) * sizeof *p->counts);
    if (!p->bin || !p->k || !p->counts) {
        free(ksum); free(cnt); free(raw); free(compact);
        return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory");
    }
    double kF = 2.0 * M_PI / p->opt.box;
    for (int b = 1; b <= maxbin; b++) {
        int c = compact[b];
        if (c < 0) continue;
        p->bin[c] = b;
        p->counts[c] = cnt[b];
        p->k[c] = p->opt.binning == CGLOW_BIN_PYLIANS ? ksum[b] / cnt[b] * kF : b * kF;
    }
    for (size_t m = 0; m < (size_t)n * nc; m++) p->mode_bin[m] = raw[m] >= 1 ? compact[raw[m]] : -1;
    free(ksum); free(cnt); free(raw); free(compact);
    return 0;
}

int cglow_pk_create(int n, const cglow_pk_options *o, cglow_pk **out)
{
    *out = NULL;
    if (n < 2 || n > 65536) return cglow_set_error(CGLOW_ESHAPE, "pk: map side %d out of range (2 .. 65536)", n);
    if (!(o->box > 0) || !isfinite(o->box)) return cglow_set_error(CGLOW_EARG, "pk: box size must be positive, got %g", o->box);
    if ((o->field == CGLOW_FIELD_LOG10 || o->field == CGLOW_FIELD_OVERDENSITY) && !(o->floor >= 0))
        return cglow_set_error(CGLOW_EARG, "pk: floor must be >= 0");
    cglow_pk *p = calloc(1, sizeof *p);
    if (!p) return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory");
    p->n = n;
    p->nc = n / 2 + 1;
    p->opt = *o;
    p->mode_bin = malloc((size_t)n * p->nc * sizeof *p->mode_bin);
    p->mode_w = malloc((size_t)n * p->nc * sizeof *p->mode_w);
    p->plan_in = fftwf_malloc(sizeof(float) * (size_t)n * n);
    p->plan_out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)n * p->nc);
    if (!p->mode_bin || !p->mode_w || !p->plan_in || !p->plan_out) {
        cglow_pk_free(p);
        return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory");
    }
    int rc = build_bins(p);
    if (rc) { cglow_pk_free(p); return rc; }
    /* FFTW's planner is not thread-safe: plan once here; threads run the plan on their own
     * fftwf_malloc'd (equally aligned) arrays through the new-array execute. */
#pragma omp critical(cglow_fftw_planner)
    p->plan = fftwf_plan_dft_r2c_2d(n, n, p->plan_in, p->plan_out, FFTW_ESTIMATE);
    if (!p->plan) { cglow_pk_free(p); return cglow_set_error(CGLOW_ENOMEM, "pk: FFTW could not plan a %dx%d transform", n, n); }
    *out = p;
    return 0;
}

int cglow_pk_nbins(const cglow_pk *p) { return p->nbins; }
const double *cglow_pk_k(const cglow_pk *p) { return p->k; }
const double *cglow_pk_counts(const cglow_pk *p) { return p->counts; }
const int *cglow_pk_bin_index(const cglow_pk *p) { return p->bin; }

/* The field of one map into f (float, as Pylians' single-precision FFT). Returns 0, or the
 * index + 1 of the first non-finite pixel. */
static size_t make_field(const cglow_pk *p, const float *map, float *f)
{
    size_t np = (size_t)p->n * p->n;
    const cglow_pk_options *o = &p->opt;
    for (size_t i = 0; i < np; i++)
        if (!isfinite(map[i])) return i + 1;
    if (o->field == CGLOW_FIELD_RAW) {
        memcpy(f, map, np * sizeof *f);
    } else if (o->field == CGLOW_FIELD_LOG10) {
        for (size_t i = 0; i < np; i++)
            f[i] = o->input_log10 ? map[i] : (float)log10(fmax((double)map[i], o->floor > 0 ? o->floor : 1e-300));
    } else {
        double sum = 0;
        for (size_t i = 0; i < np; i++) {
            double v = o->input_log10 ? pow(10.0, map[i]) : (double)map[i];
            sum += v;
        }
        double mean = sum / np;
        for (size_t i = 0; i < np; i++) {
            double v = o->input_log10 ? pow(10.0, map[i]) : (double)map[i];
            f[i] = mean != 0 && isfinite(mean) ? (float)(v / mean - 1.0) : NAN;
        }
    }
    return 0;
}

int cglow_pk_compute(cglow_pk *p, const float *maps, size_t nmaps, double *pk, const char *what, size_t first_index)
{
    int n = p->n, nc = p->nc, nb = p->nbins;
    size_t np = (size_t)n * n;
    double norm = p->opt.box * p->opt.box / ((double)np * (double)np);
    int err = 0;
    size_t bad_map = 0, bad_pix = 0;
    int nth = cglow_get_threads();
#pragma omp parallel num_threads(nth)
    {
        float *f = fftwf_malloc(sizeof(float) * np);
        fftwf_complex *F = fftwf_malloc(sizeof(fftwf_complex) * (size_t)n * nc);
        double *acc = malloc((size_t)(nb ? nb : 1) * sizeof *acc);
        if (!f || !F || !acc) {
#pragma omp atomic write
            err = CGLOW_ENOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t m = 0; m < nmaps; m++) {
            if (err || !f || !F || !acc) continue;
            size_t badp = make_field(p, maps + m * np, f);
            if (badp) {
#pragma omp critical(cglow_pk_err)
                if (!err) { err = CGLOW_EVALUE; bad_map = m; bad_pix = badp - 1; }
                continue;
            }
            fftwf_execute_dft_r2c(p->plan, f, F);
            memset(acc, 0, (size_t)nb * sizeof *acc);
            for (size_t q = 0; q < (size_t)n * nc; q++) {
                int b = p->mode_bin[q];
                if (b < 0) continue;
                double re = F[q][0], im = F[q][1];
                acc[b] += p->mode_w[q] * (re * re + im * im);
            }
            for (int b = 0; b < nb; b++) pk[m * nb + b] = acc[b] / p->counts[b] * norm;
        }
        fftwf_free(f); fftwf_free(F); free(acc);
    }
    if (err == CGLOW_ENOMEM) return cglow_set_error(CGLOW_ENOMEM, "pk: out of memory");
    if (err)
        return cglow_set_error(CGLOW_EVALUE, "%s: map %zu has a non-finite pixel (%zu, %zu)", what ? what : "pk",
                               first_index + bad_map, bad_pix / n, bad_pix % n);
    /* Overdensity of a map with zero mean is undefined: make that an error, not NaNs. */
    for (size_t m = 0; m < nmaps; m++)
        for (int b = 0; b < nb; b++)
            if (!isfinite(pk[m * nb + b]))
                return cglow_set_error(CGLOW_EVALUE, "%s: map %zu gives a non-finite spectrum (zero-mean map with --field overdensity?)",
                                       what ? what : "pk", first_index + m);
    return 0;
}

/* ---------------------------------------------------------------- comparison */
double cglow_r2(const double *real, const double *gen, int n, int lg)
{
    if (n < 2) return NAN;
    double mr = 0;
    for (int i = 0; i < n; i++) {
        double r = lg ? log10(real[i]) : real[i];
        if (!isfinite(r) || (lg && !(gen[i] > 0))) return NAN;
        mr += r;
    }
    mr /= n;
    double ss_res = 0, ss_tot = 0;
    for (int i = 0; i < n; i++) {
        double r = lg ? log10(real[i]) : real[i], g = lg ? log10(gen[i]) : gen[i];
        ss_res += (g - r) * (g - r);
        ss_tot += (r - mr) * (r - mr);
    }
    return ss_tot > 0 ? 1.0 - ss_res / ss_tot : NAN;
}

int cglow_pk_compare(const cglow_pk_set *real, const cglow_pk_set *gen, cglow_pk_comparison *c)
{
    memset(c, 0, sizeof *c);
    if (real->nbins != gen->nbins || real->side != gen->side || real->opt.binning != gen->opt.binning)
        return cglow_set_error(CGLOW_ESHAPE, "pk compare: real and generated spectra have different bins (%d vs %d bins, side %d vs %d)",
                               real->nbins, gen->nbins, real->side, gen->side);
    int nb = real->nbins;
    c->nbins = nb;
    c->k = malloc((size_t)(nb ? nb : 1) * sizeof *c->k);
    c->ratio_mean = malloc((size_t)(nb ? nb : 1) * sizeof *c->ratio_mean);
    c->ratio_std = malloc((size_t)(nb ? nb : 1) * sizeof *c->ratio_std);
    if (!c->k || !c->ratio_mean || !c->ratio_std) {
        cglow_pk_comparison_free(c);
        return cglow_set_error(CGLOW_ENOMEM, "pk compare: out of memory");
    }
    double sm = 0, ss = 0;
    int nm = 0, ns = 0;
    for (int b = 0; b < nb; b++) {
        c->k[b] = real->k[b];
        c->ratio_mean[b] = gen->mean[b] / real->mean[b];
        c->ratio_std[b] = gen->std[b] / real->std[b];
        double lm = fabs(log10(c->ratio_mean[b])), ls = fabs(log10(c->ratio_std[b]));
        if (isfinite(lm)) { sm += lm; nm++; }
        if (isfinite(ls)) { ss += ls; ns++; }
    }
    c->mean_abs_log10_ratio_mean = nm ? sm / nm : NAN;
    c->mean_abs_log10_ratio_std = ns ? ss / ns : NAN;
    c->r2_log10 = cglow_r2(real->mean, gen->mean, nb, 1);
    c->r2_linear = cglow_r2(real->mean, gen->mean, nb, 0);
    return 0;
}

void cglow_pk_comparison_free(cglow_pk_comparison *c)
{
    free(c->k); free(c->ratio_mean); free(c->ratio_std);
    memset(c, 0, sizeof *c);
}
