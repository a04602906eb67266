/* Plots through gnuplot (pngcairo terminal). Each plot writes its data to temporary files, feeds a
 * script to `gnuplot` on a pipe, lets it draw into a temporary PNG beside the final path and
 * renames that into place (atomic, like every output). gnuplot missing is an error the callers
 * may turn into a warning (the numbers are in the JSON anyway). */
#include "cglow.h"
#include "util/fileio.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GNUPLOT "gnuplot"

int cglow_plot_available(void)
{
    static int cached = -1;
    if (cached < 0) cached = system(GNUPLOT " -e 'exit' >/dev/null 2>&1") == 0;
    return cached;
}

/* A title safe inside a gnuplot double-quoted string. */
static void safe_title(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (const char *p = src ? src : ""; *p && k + 2 < n; p++) {
        char c = *p;
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '`') c = '\'';
        /* Two backslashes: one is eaten by the double-quoted string, one escapes enhanced text. */
        if ((c == '_' || c == '^' || c == '{' || c == '}' || c == '@' || c == '&' || c == '~') && k + 4 < n) {
            dst[k++] = '\\';
            dst[k++] = '\\';
        }
        dst[k++] = c;
    }
    dst[k] = 0;
}

typedef struct {
    char data[8][4096];
    int ndata;
    char png_tmp[4096];
    const char *path;
} plot_ctx;

static int plot_begin(plot_ctx *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    if (!cglow_plot_available()) return cglow_set_error(CGLOW_ENOTSUP, "%s: gnuplot is not installed: no plot", path);
    if (strlen(path) + 16 >= sizeof c->png_tmp) return cglow_set_error(CGLOW_EARG, "%s: path too long", path);
    snprintf(c->png_tmp, sizeof c->png_tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(c->png_tmp);
    if (fd < 0) return cglow_set_error(CGLOW_EIO, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    return 0;
}

/* A temporary data file; returns its FILE (caller writes and fcloses) or NULL. */
static FILE *plot_data(plot_ctx *c, const char **name)
{
    if (c->ndata >= 8) return NULL;
    char *p = c->data[c->ndata];
    const char *tmp = getenv("TMPDIR");
    snprintf(p, 4096, "%s/cglow-plot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(p);
    if (fd < 0) { cglow_set_error(CGLOW_EIO, "%s: cannot create a temporary file: %s", p, strerror(errno)); return NULL; }
    c->ndata++;
    *name = p;
    FILE *f = fdopen(fd, "w");
    if (!f) { close(fd); cglow_set_error(CGLOW_EIO, "%s: cannot open", p); }
    return f;
}

static void plot_cleanup(plot_ctx *c)
{
    for (int i = 0; i < c->ndata; i++) unlink(c->data[i]);
    c->ndata = 0;
}

/* Runs the script; on success renames the PNG into place. */
static int plot_run(plot_ctx *c, const char *script)
{
    /* CGLOW_PLOT_DEBUG=1 shows gnuplot's messages (hidden otherwise: one-line errors). */
    FILE *g = popen(getenv("CGLOW_PLOT_DEBUG") ? GNUPLOT : GNUPLOT " 2>/dev/null", "w");
    if (!g) {
        plot_cleanup(c);
        unlink(c->png_tmp);
        return cglow_set_error(CGLOW_EIO, "%s: cannot run gnuplot", c->path);
    }
    fprintf(g, "set terminal pngcairo size 900,700 enhanced font 'sans,11'\nset output '%s'\n%s\nset output\n", c->png_tmp, script);
    int st = pclose(g);
    plot_cleanup(c);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        unlink(c->png_tmp);
        return cglow_set_error(CGLOW_EIO, "%s: gnuplot failed (exit %d)", c->path, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    FILE *f = fopen(c->png_tmp, "rb");
    long size = -1;
    if (f) { fseek(f, 0, SEEK_END); size = ftell(f); fclose(f); }
    if (size <= 0) { unlink(c->png_tmp); return cglow_set_error(CGLOW_EIO, "%s: gnuplot wrote nothing", c->path); }
    if (rename(c->png_tmp, c->path) != 0) {
        int e = errno;
        unlink(c->png_tmp);
        return cglow_set_error(CGLOW_EIO, "%s: cannot rename into place: %s", c->path, strerror(e));
    }
    return 0;
}

/* ---------------------------------------------------------------- spectra */
int cglow_plot_pk(const char *path, const cglow_pk_set *real, const cglow_pk_set *gen, const char *title)
{
    plot_ctx c;
    int rc = plot_begin(&c, path);
    if (rc) return rc;
    if (gen && gen->nbins != real->nbins) {
        unlink(c.png_tmp);
        return cglow_set_error(CGLOW_ESHAPE, "%s: real and generated spectra have different bins", path);
    }
    const char *dn;
    FILE *d = plot_data(&c, &dn);
    if (!d) { plot_cleanup(&c); unlink(c.png_tmp); return CGLOW_EIO; }
    /* k, real mean, lower, upper, gen mean, lower, upper, ratio of means, ratio of stds.
     * Bands are clamped at 0.2 x mean for the log axis (std can exceed the mean at the corners). */
    for (int b = 0; b < real->nbins; b++) {
        double m = real->mean[b], s = real->std[b], lo = fmax(m - s, m * 0.2);
        fprintf(d, "%.9g %.9g %.9g %.9g", real->k[b], m, lo, m + s);
        if (gen) {
            double gm = gen->mean[b], gs = gen->std[b], glo = fmax(gm - gs, gm * 0.2);
            fprintf(d, " %.9g %.9g %.9g %.9g %.9g", gm, glo, gm + gs, gm / m, gs / s);
        }
        fprintf(d, "\n");
    }
    fclose(d);
    char t[512], script[8192];
    safe_title(t, sizeof t, title);
    const char *field = cglow_pk_field_name(real->opt.field);
    int n = 0;
    n += snprintf(script + n, sizeof script - n,
                  "set logscale xy\nset grid\nset key top right\nset style fill transparent solid 0.25 noborder\n"
                  "set ylabel 'P(k) [(Mpc/h)^2]'\nset format y '10^{%%T}'\nset xrange [%.6g:%.6g]\n",
                  real->k[0] * 0.9, real->k[real->nbins > 0 ? real->nbins - 1 : 0] * 1.1);
    if (gen) {
        n += snprintf(script + n, sizeof script - n,
                      "set multiplot title \"%s (%s field, %s binning)\"\n"
                      "set lmargin 12\nset size 1,0.63\nset origin 0,0.32\nset format x ''\n"
                      "plot '%s' u 1:3:4 w filledcurves lc rgb '#1f77b4' t 'real {/Symbol \\261}1{/Symbol s}',"
                      " '' u 1:2 w l lw 2 lc rgb '#1f77b4' t 'real mean',"
                      " '' u 1:6:7 w filledcurves lc rgb '#d62728' t 'generated {/Symbol \\261}1{/Symbol s}',"
                      " '' u 1:5 w l lw 2 dt 2 lc rgb '#d62728' t 'generated mean'\n"
                      "set size 1,0.32\nset origin 0,0\nunset logscale y\nset format x '%%g'\nset xlabel 'k [h/Mpc]'\n"
                      "set ylabel 'gen / real'\nset key bottom left\nset yrange [0.5:1.5]\nset format y '%%g'\n"
                      "plot '%s' u 1:8 w lp pt 7 ps 0.5 lc rgb '#000000' t 'mean', '' u 1:9 w lp pt 6 ps 0.5 lc rgb '#7f7f7f' t 'std', 1 w l dt 3 lc rgb '#444444' notitle\n"
                      "unset multiplot\n",
                      t, field, cglow_pk_binning_name(real->opt.binning), dn, dn);
    } else {
        n += snprintf(script + n, sizeof script - n,
                      "set title \"%s (%zu maps, %s field, %s binning)\"\nset xlabel 'k [h/Mpc]'\n"
                      "plot '%s' u 1:3:4 w filledcurves lc rgb '#1f77b4' t '{/Symbol \\261}1{/Symbol s}',"
                      " '' u 1:2 w l lw 2 lc rgb '#1f77b4' t 'mean'\n",
                      t, real->nmaps, field, cglow_pk_binning_name(real->opt.binning), dn);
    }
    return plot_run(&c, script);
}

/* ---------------------------------------------------------------- posterior */
/* Appends one posterior panel (its data file, then the plot commands) to script at *n. */
static int posterior_panel(plot_ctx *c, char *script, size_t cap, int *n, const cglow_grid *g, const double *post,
                           const cglow_post_summary *s, const char *title)
{
    const char *dn;
    FILE *d = plot_data(c, &dn);
    if (!d) return CGLOW_EIO;
    int G = g->G;
    /* Level image: 2 inside the 68% region, 1 inside the 95% one, 0 outside. */
    for (int i = 0; i < G; i++) {
        for (int j = 0; j < G; j++) {
            double p = post[(size_t)i * G + j];
            int lev = p >= s->hpd_threshold[0] ? 2 : p >= s->hpd_threshold[1] ? 1 : 0;
            fprintf(d, "%.9g %.9g %d\n", cglow_grid_value(g, 0, i), cglow_grid_value(g, 1, j), lev);
        }
        fprintf(d, "\n");
    }
    fclose(d);
    double dx = (g->hi[0] - g->lo[0]) / (g->edges ? G - 1 : G), dy = (g->hi[1] - g->lo[1]) / (g->edges ? G - 1 : G);
    double x0 = cglow_grid_value(g, 0, 0) - dx / 2, x1 = cglow_grid_value(g, 0, G - 1) + dx / 2;
    double y0 = cglow_grid_value(g, 1, 0) - dy / 2, y1 = cglow_grid_value(g, 1, G - 1) + dy / 2;
    char t[512], truth[512] = "";
    safe_title(t, sizeof t, title);
    if (s->has_truth) snprintf(truth, sizeof truth, ", '-' u 1:2 w p pt 2 ps 3 lw 3 lc rgb '#e00000' t 'truth'");
    *n += snprintf(script + *n, cap - *n,
                   "set size ratio -1\nset title \"%s\"\nset xlabel '{/Symbol W}_m'\nset ylabel '{/Symbol s}_8'\n"
                   "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\nunset colorbox\n"
                   "set palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#2166ac')\nset cbrange [0:2]\n"
                   "set key outside right top\n"
                   "plot '%s' u 1:2:3 w image notitle,"
                   " NaN w boxes fs solid lc rgb '#2166ac' t '68%% HPD', NaN w boxes fs solid lc rgb '#9ecae1' t '95%% HPD',"
                   " '-' u 1:2 w p pt 1 ps 3 lw 3 lc rgb '#000000' t 'mean'%s\n%.9g %.9g\ne\n",
                   t, x0, x1, y0, y1, dn, truth, s->mean[0], s->mean[1]);
    if (s->has_truth) *n += snprintf(script + *n, cap - *n, "%.9g %.9g\ne\n", s->truth[0], s->truth[1]);
    return (size_t)*n < cap ? 0 : cglow_set_error(CGLOW_EARG, "plot: script too long");
}

/* One posterior with its 1-D marginals above (Omega_m) and to the right (sigma_8). */
int cglow_plot_posterior(const char *path, const cglow_grid *g, const double *post, const cglow_post_summary *s,
                         const char *title)
{
    plot_ctx c;
    int rc = plot_begin(&c, path);
    if (rc) return rc;
    int G = g->G;
    const char *dn, *mn;
    FILE *d = plot_data(&c, &dn);
    if (!d) { plot_cleanup(&c); unlink(c.png_tmp); return CGLOW_EIO; }
    for (int i = 0; i < G; i++) {
        for (int j = 0; j < G; j++) {
            double p = post[(size_t)i * G + j];
            int lev = p >= s->hpd_threshold[0] ? 2 : p >= s->hpd_threshold[1] ? 1 : 0;
            fprintf(d, "%.9g %.9g %d\n", cglow_grid_value(g, 0, i), cglow_grid_value(g, 1, j), lev);
        }
        fprintf(d, "\n");
    }
    fclose(d);
    FILE *mf = plot_data(&c, &mn);
    if (!mf) { plot_cleanup(&c); unlink(c.png_tmp); return CGLOW_EIO; }
    /* Marginals as densities (mass / cell width) so that the axes read in parameter units. */
    double dx = (g->hi[0] - g->lo[0]) / (g->edges ? G - 1 : G), dy = (g->hi[1] - g->lo[1]) / (g->edges ? G - 1 : G);
    for (int i = 0; i < G; i++) {
        double m0 = 0, m1 = 0;
        for (int j = 0; j < G; j++) { m0 += post[(size_t)i * G + j]; m1 += post[(size_t)j * G + i]; }
        fprintf(mf, "%.9g %.9g %.9g %.9g\n", cglow_grid_value(g, 0, i), m0 / dx, cglow_grid_value(g, 1, i), m1 / dy);
    }
    fclose(mf);
    double x0 = cglow_grid_value(g, 0, 0) - dx / 2, x1 = cglow_grid_value(g, 0, G - 1) + dx / 2;
    double y0 = cglow_grid_value(g, 1, 0) - dy / 2, y1 = cglow_grid_value(g, 1, G - 1) + dy / 2;
    char t[512], script[8192], truth[512] = "", tx[256] = "", ty[256] = "";
    safe_title(t, sizeof t, title);
    if (s->has_truth) {
        snprintf(truth, sizeof truth, ", '-' u 1:2 w p pt 2 ps 3 lw 3 lc rgb '#e00000' t 'truth'");
        snprintf(tx, sizeof tx, "set arrow 1 from %.9g, graph 0 to %.9g, graph 1 nohead lc rgb '#e00000' lw 2\n", s->truth[0], s->truth[0]);
        snprintf(ty, sizeof ty, "set arrow 1 from graph 0, first %.9g to graph 1, first %.9g nohead lc rgb '#e00000' lw 2\n", s->truth[1], s->truth[1]);
    }
    int n = snprintf(script, sizeof script,
                     "set terminal pngcairo size 820,800 enhanced font 'sans,11'\nset output '%s'\n"
                     "set multiplot title \"%s\"\n"
                     /* main panel */
                     "set lmargin at screen 0.11\nset rmargin at screen 0.72\nset bmargin at screen 0.09\nset tmargin at screen 0.70\n"
                     "set xlabel '{/Symbol W}_m'\nset ylabel '{/Symbol s}_8'\nset xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n"
                     "unset colorbox\nset palette defined (0 '#ffffff', 1 '#9ecae1', 2 '#2166ac')\nset cbrange [0:2]\n"
                     "set key at screen 0.97, screen 0.90 right top box opaque\n"
                     "plot '%s' u 1:2:3 w image notitle,"
                     " NaN w boxes fs solid lc rgb '#2166ac' t '68%% HPD', NaN w boxes fs solid lc rgb '#9ecae1' t '95%% HPD',"
                     " '-' u 1:2 w p pt 1 ps 3 lw 3 lc rgb '#000000' t 'mean'%s\n%.9g %.9g\ne\n",
                     c.png_tmp, t, x0, x1, y0, y1, dn, truth, s->mean[0], s->mean[1]);
    if (s->has_truth) n += snprintf(script + n, sizeof script - n, "%.9g %.9g\ne\n", s->truth[0], s->truth[1]);
    n += snprintf(script + n, sizeof script - n,
                  "unset key\nunset xlabel\nunset ylabel\nset format x ''\nset ytics format ''\nset yrange [0:*]\n"
                  "set lmargin at screen 0.11\nset rmargin at screen 0.72\nset bmargin at screen 0.72\nset tmargin at screen 0.90\n"
                  "%sset style fill solid 0.5\nplot '%s' u 1:2 w histeps lw 2 lc rgb '#2166ac'\nunset arrow\n"
                  "set format x ''\nset format y ''\nset xrange [0:*]\nset yrange [%.9g:%.9g]\n"
                  "set lmargin at screen 0.74\nset rmargin at screen 0.92\nset bmargin at screen 0.09\nset tmargin at screen 0.70\n"
                  "%splot '%s' u 4:3 w l lw 2 lc rgb '#2166ac'\nunset multiplot\n",
                  tx, mn, y0, y1, ty, mn);
    if ((size_t)n >= sizeof script) { plot_cleanup(&c); unlink(c.png_tmp); return cglow_set_error(CGLOW_EARG, "plot: script too long"); }
    return plot_run(&c, script);
}

int cglow_plot_posterior_pair(const char *path, const cglow_grid *g, const double *p1, const cglow_post_summary *s1,
                              const char *t1, const double *p2, const cglow_post_summary *s2, const char *t2)
{
    plot_ctx c;
    int rc = plot_begin(&c, path);
    if (rc) return rc;
    char script[16384];
    int n = snprintf(script, sizeof script, "set terminal pngcairo size 1400,620 enhanced font 'sans,11'\nset output '%s'\n"
                                            "set multiplot layout 1,2\n", c.png_tmp);
    if ((rc = posterior_panel(&c, script, sizeof script, &n, g, p1, s1, t1)) ||
        (rc = posterior_panel(&c, script, sizeof script, &n, g, p2, s2, t2))) {
        plot_cleanup(&c);
        unlink(c.png_tmp);
        return rc;
    }
    n += snprintf(script + n, sizeof script - n, "unset multiplot\n");
    return plot_run(&c, script);
}

/* ---------------------------------------------------------------- calibration */
int cglow_plot_calibration(const char *path, const cglow_calibration *cal, const char *title)
{
    plot_ctx c;
    int rc = plot_begin(&c, path);
    if (rc) return rc;
    const char *dn, *hn;
    FILE *d = plot_data(&c, &dn);
    if (!d) { plot_cleanup(&c); unlink(c.png_tmp); return CGLOW_EIO; }
    for (int l = 0; l < CGLOW_NLEVELS; l++)
        fprintf(d, "%d %.6g %.6g %.6g %.6g\n", l, cglow_hpd_levels[l], cal->coverage[l], cal->cov_err[l], cal->mean_hpd_mass[l]);
    fclose(d);
    FILE *h = plot_data(&c, &hn);
    if (!h) { plot_cleanup(&c); unlink(c.png_tmp); return CGLOW_EIO; }
    for (int b = 0; b < CGLOW_RANK_BINS; b++) fprintf(h, "%.6g %d\n", (b + 0.5) / CGLOW_RANK_BINS, cal->rank_hist[b]);
    fclose(h);
    char t[512], script[8192];
    safe_title(t, sizeof t, title);
    double expect = (double)cal->n / CGLOW_RANK_BINS;
    snprintf(script, sizeof script,
             "set multiplot layout 1,2 title \"%s (%d maps)\"\n"
             "set title 'HPD coverage'\nset xrange [-0.5:1.5]\nset yrange [0:1.05]\nset xtics ('68%%%%' 0, '95%%%%' 1)\n"
             "set ylabel 'fraction of truths inside'\nset key top left\nset style fill solid 0.5\nset boxwidth 0.5\n"
             "plot '%s' u 1:3 w boxes lc rgb '#2166ac' t 'observed', '' u 1:3:4 w yerrorbars pt 7 lc rgb '#000000' t '1{/Symbol s} binomial',"
             " '' u 1:2 w p pt 5 ps 2 lc rgb '#e00000' t 'nominal', '' u 1:5 w p pt 3 ps 2 lc rgb '#ff8c00' t 'mass enclosed (grid)'\n"
             "set title 'rank of the truth (HPD level at which it enters)'\nset xrange [0:1]\nset yrange [0:*]\nset xtics auto\n"
             "set xlabel 'HPD level'\nset ylabel 'maps'\nset boxwidth %g\n"
             "plot '%s' u 1:2 w boxes lc rgb '#9ecae1' t 'maps', %g w l dt 2 lw 2 lc rgb '#e00000' t 'uniform'\n"
             "unset multiplot\n",
             t, cal->n, dn, 1.0 / CGLOW_RANK_BINS, hn, expect);
    return plot_run(&c, script);
}

/* ---------------------------------------------------------------- training curves */
int cglow_plot_loss(const char *path, const char *csv_path)
{
    plot_ctx c;
    int rc = plot_begin(&c, path);
    if (rc) return rc;
    char script[8192];
    /* loss.csv of cglow train: epoch,step,train_loss,train_bits_per_pixel,test_loss,... */
    snprintf(script, sizeof script,
             "set datafile separator ','\nset key autotitle columnhead top right\n"
             "set title 'training curve'\nset xlabel 'epoch'\nset ylabel 'loss (nats per pixel, model space)'\n"
             "set grid\nplot '%s' u 1:3 w lp pt 7 ps 0.6 lw 2 lc rgb '#2166ac' t 'train', "
             "'' u 1:5 w lp pt 5 ps 0.6 lw 2 lc rgb '#e08214' t 'test'\n", csv_path);
    return plot_run(&c, script);
}
