/* cglow science API (model.md sections 5-6): power spectra, posterior grids, calibration,
 * pictures and the report. Included by cglow.h; do not include directly.
 * Conventions as in cglow.h: 0 or a negative CGLOW_E* code with a one-line message. */
#ifndef CGLOW_SCIENCE_H
#define CGLOW_SCIENCE_H

/* ================================================================ power spectrum (section 5) */
typedef enum { CGLOW_BIN_PYLIANS = 0, CGLOW_BIN_HIGLOW = 1 } cglow_pk_binning;
/* The field whose spectrum is taken: log10 of the map (default, HIGlow), the overdensity
 * map/mean - 1 (CAMELS), or "raw": the values of the array exactly as given (for tests and for
 * comparing with other tools on arbitrary fields). */
typedef enum { CGLOW_FIELD_LOG10 = 0, CGLOW_FIELD_OVERDENSITY = 1, CGLOW_FIELD_RAW = 2 } cglow_pk_field;

typedef struct {
    double box;                 /* Lbox in Mpc/h, 25 */
    cglow_pk_binning binning;   /* pylians */
    cglow_pk_field field;       /* log10 */
    int input_log10;            /* 1: the maps are given in log10 units (u), 0: linear (default) */
    double floor;               /* linear floor before log10 (as preprocessing), 1e-8 */
    int downsample;             /* block-mean factor on the linear maps before the spectrum (1); used by
                                 * cglow_pk_set_from_npy (e.g. 4: CAMELS 256 -> the model's 64) */
} cglow_pk_options;
void cglow_pk_options_default(cglow_pk_options *o);
/* "pylians"/"higlow", "log10"/"overdensity"/"raw" -> enum; CGLOW_EARG if unknown. */
int cglow_pk_parse_binning(const char *s, cglow_pk_binning *b);
int cglow_pk_parse_field(const char *s, cglow_pk_field *f);
const char *cglow_pk_binning_name(cglow_pk_binning b);
const char *cglow_pk_field_name(cglow_pk_field f);

/* A power-spectrum plan for n x n maps: the FFTW plan and the mode -> bin table. */
typedef struct cglow_pk cglow_pk;
int cglow_pk_create(int n, const cglow_pk_options *o, cglow_pk **out);
void cglow_pk_free(cglow_pk *p);
int cglow_pk_nbins(const cglow_pk *p);        /* non-empty bins */
const double *cglow_pk_k(const cglow_pk *p);   /* k of each bin, h/Mpc */
const double *cglow_pk_counts(const cglow_pk *p); /* modes per bin */
const int *cglow_pk_bin_index(const cglow_pk *p); /* integer bin (floor or round of |k|/kF) */
/* P(k) of n maps (n x side x side floats, units per options) -> pk (nmaps x nbins), in
 * (Mpc/h)^2. Threads over maps. first_index names maps in errors (non-finite pixels). */
int cglow_pk_compute(cglow_pk *p, const float *maps, size_t nmaps, double *pk, const char *what,
                     size_t first_index);

/* The spectra of a set of maps with their statistics (mean, std ddof 0 over maps). */
typedef struct {
    cglow_pk_options opt;
    int side;         /* n */
    int nbins;
    size_t nmaps;
    int *bin;         /* nbins */
    double *k, *counts, *mean, *std; /* nbins each */
    double *pk;       /* nmaps x nbins, per map */
} cglow_pk_set;
/* From maps in memory (nmaps, side, side). */
int cglow_pk_set_from_maps(const float *maps, size_t nmaps, int side, const cglow_pk_options *o,
                           cglow_pk_set *s, const char *what);
/* From a .npy (N, n, n) or (N, 1, n, n), read in chunks; maps first .. first+count-1
 * (count 0 = to the end); or the listed indices (idx != NULL, nidx of them). */
int cglow_pk_set_from_npy(const char *path, const cglow_pk_options *o, size_t first, size_t count,
                          const size_t *idx, size_t nidx, cglow_pk_set *s);
void cglow_pk_set_free(cglow_pk_set *s);
/* JSON {"k","mean","std","counts","bin", options, "n_maps"[, "pk" per map]}; atomic write. */
int cglow_pk_set_save_json(const cglow_pk_set *s, const char *path, int per_map);

/* Generated against real (same grid and options). */
typedef struct {
    int nbins;
    double *k, *ratio_mean, *ratio_std;       /* gen / real per bin */
    double mean_abs_log10_ratio_mean, mean_abs_log10_ratio_std;
    double r2_log10, r2_linear;              /* R^2 of the mean spectrum (section 5) */
} cglow_pk_comparison;
int cglow_pk_compare(const cglow_pk_set *real, const cglow_pk_set *gen, cglow_pk_comparison *c);
void cglow_pk_comparison_free(cglow_pk_comparison *c);
/* R^2 = 1 - sum (g - r)^2 / sum (r - mean(r))^2 over n bins; log10 = 1 compares log10 values.
 * NaN if undefined (n < 2, constant r, non-positive values under log10). */
double cglow_r2(const double *real, const double *gen, int n, int log10);

/* ================================================================ posterior (section 6) */
/* A G x G grid over the prior box of (Omega_m, sigma_8): axis 0 is parameter 0, axis 1 is
 * parameter 1. Cell centres lo + (i + 0.5) (hi - lo) / G by default; edges = 1 gives
 * linspace(lo, hi, G) (HIGlow). */
typedef struct {
    int G;
    int edges;
    double lo[2], hi[2];
} cglow_grid;
int cglow_grid_init(cglow_grid *g, int G, const double lo[2], const double hi[2], int edges);
double cglow_grid_value(const cglow_grid *g, int axis, int i);
/* The G*G points (theta0, theta1), row-major: point i*G + j = (value(0, i), value(1, j)). */
void cglow_grid_points(const cglow_grid *g, double *theta);

#define CGLOW_NLEVELS 2
extern const double cglow_hpd_levels[CGLOW_NLEVELS]; /* 0.68, 0.95 */

typedef struct {
    double mean[2], std[2], map[2];
    double hpd_threshold[CGLOW_NLEVELS]; /* cell mass at the edge of each HPD region */
    double hpd_mass[CGLOW_NLEVELS];      /* mass actually enclosed (>= level) */
    int hpd_cells[CGLOW_NLEVELS];
    double max_cell;                     /* the largest cell mass (resolution warning if large) */
    int has_truth;
    double truth[2];
    int in_hpd[CGLOW_NLEVELS];           /* the truth's cell is inside the 68% / 95% region */
    double truth_level;  /* mid-rank of the truth's cell (the grid point nearest the truth): mass
                          * of denser cells + half the mass tied with it; U(0,1) if calibrated */
    double bias[2];      /* (mean - truth) / std */
} cglow_post_summary;

/* log-likelihoods (G*G, any additive constant) -> posterior cell masses summing to 1
 * (logsumexp). Non-finite values other than -inf are an error; all -inf is an error. */
int cglow_posterior_normalise(const double *loglike, int npts, double *post);
/* Density threshold of the smallest set of cells with mass >= level (cells sorted by mass). */
double cglow_hpd_threshold(const double *post, int npts, double level, double *mass, int *cells);
/* Mean, std, MAP, HPD regions and, with truth (may be NULL), coverage and rank.
 * marg0, marg1 (G each, may be NULL): the 1-D marginals (cell masses). */
int cglow_posterior_summarise(const cglow_grid *g, const double *post, const double *truth,
                              cglow_post_summary *s, double *marg0, double *marg1);
/* An HPD mask (G*G, 1 inside) for level index l. */
void cglow_hpd_mask(const double *post, int npts, double threshold, unsigned char *mask);

/* Calibration over many maps with known truth. */
#define CGLOW_RANK_BINS 10
typedef struct {
    int n;
    double coverage[CGLOW_NLEVELS];   /* fraction of truths inside */
    double cov_err[CGLOW_NLEVELS];    /* binomial error sqrt(f (1 - f) / n) of the observed f */
    double cov_z[CGLOW_NLEVELS];      /* (f - level) / sqrt(level (1 - level) / n) */
    double mean_hpd_mass[CGLOW_NLEVELS]; /* mass the regions actually enclose (>= level on a
                                          * coarse grid: the coverage to expect) */
    int rank_hist[CGLOW_RANK_BINS];   /* histogram of truth_level over [0, 1] */
    double bias_mean[2], bias_std[2]; /* of (mean - truth) / std over maps */
    double mean_std[2];               /* average posterior std */
} cglow_calibration;
int cglow_calibrate(const cglow_post_summary *s, int n, cglow_calibration *c);

/* Two posteriors on the same grid: q against the reference p (e.g. flow against exact). */
typedef struct {
    double shift[2];        /* (mean_q - mean_p) / std_p */
    double width_ratio[2];  /* std_q / std_p */
    double kl;              /* KL(p || q) = sum p log(p / q), nats; inf if q = 0 where p > 0 */
} cglow_post_comparison;
int cglow_posterior_compare(const cglow_grid *g, const double *p, const double *q, cglow_post_comparison *c);

/* ---------------------------------------------------------------- inference driver */
/* A scorer: log p(map | theta) for one map (index map_index of the set) at npts raw parameter
 * points theta (npts x 2), any per-map constant allowed. */
typedef int (*cglow_scorer_fn)(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);

/* Scorer over a flow model: maps raw linear (n, h, w) are preprocessed with the model's data
 * config; all G*G conditions of one map go to one cglow_log_prob call. */
typedef struct {
    cglow_model *model;
    const float *maps;  /* raw linear (nmaps, h, w) */
    size_t nmaps;
    int h, w;
    const char *what;   /* file name for errors */
    /* internal buffers */
    float *x1, *xrep, *cond;
    int cap;
} cglow_model_scorer;
int cglow_model_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);
void cglow_model_scorer_free(cglow_model_scorer *s);

/* Scorer with the exact synthetic likelihood of model.md section 7 (cglow_synth_loglike_grid when
 * the points are exactly `grid`'s, else cglow_synth_loglike per point). Thread-safe. */
typedef struct {
    cglow_synth_opts opt;   /* n must be the map side */
    const float *maps;      /* raw linear (nmaps, n, n) */
    size_t nmaps;
    const char *what;
    const cglow_grid *grid; /* may be NULL */
} cglow_exact_scorer;
int cglow_exact_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);

typedef struct {
    cglow_grid grid;
    const double *truth;   /* nmaps x 2 raw parameters or NULL */
    int progress;          /* 1: a progress line on stderr */
    int parallel_maps;     /* 1: maps in parallel (only for thread-safe scorers that do not thread) */
} cglow_infer_options;
/* Posterior of nmaps maps: post (nmaps x G x G) and summaries (nmaps). */
int cglow_infer(const cglow_infer_options *o, cglow_scorer_fn fn, void *ctx, size_t nmaps, double *post,
                cglow_post_summary *summ);
/* summary.json of an inference run (per-map summaries with the 1-D marginals when post (n x G x G)
 * is given, calibration when truths are known). */
int cglow_infer_save_json(const char *path, const cglow_grid *g, const cglow_post_summary *s, const double *post,
                          size_t n, const cglow_calibration *cal, const char *scorer);


/* ---------------------------------------------------------------- whole jobs (CLI and demo) */
/* cglow infer / cglow calibrate on files. Outputs in out_dir (created by the caller):
 *   infer:     posterior.npy (maps, G, G) float64, axis 1 Omega_m, axis 2 sigma_8, cell masses;
 *              summary.json; posterior_NNN.png for the first n_png maps; calibration.png (truths).
 *   calibrate: for each scorer S in {flow, exact} used: posterior_S.npy, summary_S.json,
 *              calibration_S.png; calibration.json with both and, when both ran, the flow-vs-exact
 *              comparison (per map and averaged: mean shift in exact-std units, width ratio, KL). */
typedef struct {
    const char *maps_path;    /* raw linear maps (N, n, n) or (N, 1, n, n) */
    const char *truth_path;   /* table (rows per map or per simulation) or NULL */
    const char *model_path;   /* flow checkpoint or NULL */
    int exact;                /* 1: the exact synthetic likelihood (section 7) */
    double beta, synth_box;   /* of the exact likelihood: 0.3, 25 */
    int G, edges;             /* 30, cell centres */
    int box_set;              /* 0: the model's condition box, or CAMELS LH for --exact */
    double lo[2], hi[2];
    size_t first, count;      /* maps first .. first+count-1 (count 0 = all) */
    int n_png;                /* posterior pictures (4) */
    const char *out_dir;
    int progress;
} cglow_infer_run;
void cglow_infer_run_default(cglow_infer_run *r);
int cglow_run_infer(const cglow_infer_run *r);
int cglow_run_calibrate(const cglow_infer_run *r);

/* cglow eval: spectra of real and generated maps, numbers and plots.
 * Outputs out_dir/<tag>.json (real, gen, comparison), <tag>.png (spectra with ratio panel) and
 * <tag>_maps.png (first real maps over the first generated ones, log10). */
typedef struct {
    const char *real_path;    /* maps */
    int real_log10;           /* units of real maps (0 linear) */
    const char *gen_path;     /* generated maps, or NULL to generate with model_path */
    int gen_log10;            /* units of gen maps */
    const char *params_path;  /* parameter table of the real maps (for --sim and for generation) */
    long sim;                 /* >= 0: conditional on this simulation (its maps vs maps at its params) */
    const char *model_path;   /* to generate when gen_path is NULL */
    long n_gen;               /* maps to generate (marginal: at random real rows; default = real count) */
    double temperature;
    uint64_t seed;
    cglow_pk_options opt;     /* binning, field, box, floor (input_log10 is set per set) */
    const char *out_dir, *tag;
} cglow_eval_run;
void cglow_eval_run_default(cglow_eval_run *r);
/* cmp (may be NULL) receives the comparison numbers (free with cglow_pk_comparison_free). */
int cglow_run_eval(const cglow_eval_run *r, cglow_pk_comparison *cmp);

/* cglow sample: rows of raw parameters theta (rows x P, P = the model's) -> rows*K maps in rows
 * order, log10 (linear = 0) or linear units. *n_bad receives the number of maps with a non-finite
 * pixel (reported, kept). out (rows*K*H*W) is the caller's. */
int cglow_sample_maps(cglow_model *m, const double *theta, int rows, int per_cond, float temperature, uint64_t seed,
                      int linear, float *out, size_t *n_bad);

/* ================================================================ pictures */
/* Colour maps for map pictures. */
typedef enum { CGLOW_CMAP_VIRIDIS = 0, CGLOW_CMAP_MAGMA = 1, CGLOW_CMAP_GREY = 2 } cglow_cmap;
/* A PNG of nmaps maps (side x side each, values as given, e.g. log10) in a grid of `cols`
 * columns, each pixel scale x scale, with a colour bar from vmin to vmax (vmin >= vmax: from the
 * data, 1st-99th percentile). Atomic write. */
int cglow_image_maps(const char *path, const float *maps, size_t nmaps, int h, int w, int cols, int scale,
                     double vmin, double vmax, cglow_cmap cmap);

/* gnuplot plots (pngcairo), atomic writes. */
/* Spectra: log-log mean with 1-sigma bands for real (and gen, may be NULL), ratio panel. */
int cglow_plot_pk(const char *path, const cglow_pk_set *real, const cglow_pk_set *gen, const char *title);
/* Filled 68/95% HPD contours of one posterior, truth (may be NULL) as a red x, mean as a black +. */
int cglow_plot_posterior(const char *path, const cglow_grid *g, const double *post, const cglow_post_summary *s,
                         const char *title);
/* Two posteriors of one map side by side (e.g. exact and flow). */
int cglow_plot_posterior_pair(const char *path, const cglow_grid *g, const double *p1, const cglow_post_summary *s1,
                              const char *t1, const double *p2, const cglow_post_summary *s2, const char *t2);
/* Coverage bars and the rank histogram. */
int cglow_plot_calibration(const char *path, const cglow_calibration *c, const char *title);
/* Train and test loss per epoch from a loss.csv written by cglow train. */
int cglow_plot_loss(const char *path, const char *csv_path);
/* 1 if gnuplot can be run (plots are skipped with a warning otherwise). */
int cglow_plot_available(void);

/* ================================================================ report */
/* Builds dir/index.html from what is in dir (layout in src/science/report.c and cglow report
 * --help): pictures, JSON numbers as tables, the commands in dir/commands.txt. */
int cglow_report_build(const char *dir, const char *title);
/* Appends one command line to dir/commands.txt (for the report). */
int cglow_report_log_command(const char *dir, int argc, char **argv);

#endif
