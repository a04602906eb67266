/* cglow demo: the whole job on the embedded synthetic default, as a sequence of ordinary cglow
 * commands (each logged to OUT/commands.txt, so the report shows how to redo any step):
 *   synth -> train (whole simulations held out) -> sample -> eval (marginal and conditional)
 *   -> infer (held-out maps) -> calibrate (flow against the exact likelihood) -> report.
 * The defaults finish in about ten minutes on 2 cores; --quick runs a tiny version (tests). */
#include "cli/cli.h"
#include "util/progress.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAXARGS 64

typedef struct {
    const char *out;
    int step, nsteps;
    double t0;
} demo_ctx;

/* Runs one cglow subcommand given as NULL-terminated words (after "cglow"); logs it first. */
static int run(demo_ctx *d, const char *what, cli_cmd_fn fn, ...)
{
    char *argv[MAXARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, fn);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < MAXARGS - 1;) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char *logv[MAXARGS + 1];
    logv[0] = "cglow";
    for (int i = 0; i <= argc; i++) logv[i + 1] = argv[i];
    cglow_report_log_command(d->out, argc + 1, logv);
    d->step++;
    fprintf(stderr, "\n== demo step %d/%d (%.0f s): %s\n  ", d->step, d->nsteps, now_seconds() - d->t0, what);
    for (int i = 0; i < argc + 1; i++) fprintf(stderr, "%s ", logv[i]);
    fprintf(stderr, "\n");
    int rc = fn(argc, argv);
    if (rc) fprintf(stderr, "cglow demo: step '%s' failed (exit %d)\n", what, rc);
    return rc;
}

static int path(char *buf, size_t n, const char *out, const char *rel)
{
    return snprintf(buf, n, "%s/%s", out, rel) >= (int)n;
}

int cmd_demo(int argc, char **argv)
{
    const char *out = "report";
    long sims = 200, size = 32, threads = 0, seed = 1, calib = 120;
    double minutes = 8;
    int quick = 0;
    cli_flag flags[] = {
        {"out", FLAG_STR, &out, "output folder (report); the report is OUT/index.html", 0, 0},
        {"minutes", FLAG_DOUBLE, &minutes, "training time budget in minutes (8)", 0, 0},
        {"sims", FLAG_INT, &sims, "synthetic simulations of 15 maps (200)", 0, 0},
        {"size", FLAG_INT, &size, "map side in pixels (32)", 0, 0},
        {"calibrate", FLAG_INT, &calib, "held-out maps in the calibration (120)", 0, 0},
        {"seed", FLAG_INT, &seed, "seed of everything (1)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
        {"quick", FLAG_BOOL, &quick, "a tiny run (seconds) that exercises every step", 0, 0},
    };
    int help, rc = cli_parse("demo", "The whole job on the synthetic default: synth, train, sample, eval, infer, "
                                     "calibrate and an HTML report.", flags, 8, argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if (sims < 10 || size < 16 || size > 256 || (size & (size - 1)) || minutes <= 0 || calib < 1)
        return cli_fail("--sims >= 10, --size a power of two in 16..256, --minutes > 0, --calibrate >= 1");
    if (quick) { sims = 20; size = 16; minutes = 0.3; calib = 12; }
    cli_apply_threads(threads);
    if (cli_mkdirs(out)) return 1;
    char data[2048], maps[4096], params[4096], train[2048], model[4096], cond[4096], samples[4096], samples_png[4096];
    char test_maps[4096], test_params[4096], evald[4096], inferd[4096], calibd[4096];
    if (strlen(out) > 1000 || path(data, sizeof data, out, "data") || path(train, sizeof train, out, "train")) return cli_fail("%s: path too long", out);
    snprintf(maps, sizeof maps, "%s/maps.npy", data);
    snprintf(params, sizeof params, "%s/params.txt", data);
    snprintf(model, sizeof model, "%s/model.safetensors", train);
    snprintf(cond, sizeof cond, "%s/sample_params.npy", data);
    snprintf(samples, sizeof samples, "%s/samples.npy", out);
    snprintf(samples_png, sizeof samples_png, "%s/samples.png", out);
    snprintf(test_maps, sizeof test_maps, "%s/test_maps.npy", data);
    snprintf(test_params, sizeof test_params, "%s/test_params.npy", data);
    snprintf(evald, sizeof evald, "%s/eval", out);
    snprintf(inferd, sizeof inferd, "%s/infer", out);
    snprintf(calibd, sizeof calibd, "%s/calibrate", out);
    if (cli_mkdirs(data)) return 1;
    /* start a fresh command log */
    char cmdlog[4096];
    snprintf(cmdlog, sizeof cmdlog, "%s/commands.txt", out);
    remove(cmdlog);

    char s_sims[32], s_size[32], s_seed[32], s_seed2[32], s_min[32], s_levels[32], s_steps[32], s_epochs[32];
    snprintf(s_sims, sizeof s_sims, "%ld", sims);
    snprintf(s_size, sizeof s_size, "%ld", size);
    snprintf(s_seed, sizeof s_seed, "%ld", seed);
    snprintf(s_seed2, sizeof s_seed2, "%ld", seed + 1);
    snprintf(s_min, sizeof s_min, "%g", minutes);
    int levels = 0;
    for (long s = size; s > 2; s /= 2) levels++;   /* down to 2x2 latents before the final block */
    if (levels > 6) levels = 6;
    snprintf(s_levels, sizeof s_levels, "%d", quick ? 2 : levels);
    snprintf(s_steps, sizeof s_steps, "%d", quick ? 2 : 8);
    snprintf(s_epochs, sizeof s_epochs, "%d", quick ? 2 : 400);
    demo_ctx d = {out, 0, 8, now_seconds()};

    rc = run(&d, "synthetic CAMELS-like data (exact likelihood known)", cmd_synth, "synth", "--sims", s_sims,
             "--maps-per-sim", "15", "--size", s_size, "--seed", s_seed, "--out-maps", maps, "--out-params", params,
             NULL);
    if (rc) return rc;
    rc = run(&d, "train a conditional Glow; whole simulations held out", cmd_train, "train", "--maps", maps, "--params",
             params, "--out", train, "--levels", s_levels, "--flow-steps", s_steps, "--hidden", "16", "--batch", "32",
             "--lr", "1e-3", "--warmup", "200", "--split", "holdout", "--holdout-fraction", "0.1", "--epochs", s_epochs,
             "--max-minutes", s_min, "--seed", s_seed, "--quiet", NULL);
    if (rc) return rc;

    /* The held-out maps (as the training split chose them) and the sampling points. */
    cglow_dataset ds;
    if (cglow_dataset_open(maps, params, NULL, 0, &ds)) return cli_fail_lib();
    size_t *tr = malloc(sizeof(size_t) * ds.n_maps), *te = malloc(sizeof(size_t) * ds.n_maps), ntr = 0, nte = 0;
    float *tm = NULL;
    double *tp = NULL;
    rc = !tr || !te;
    if (!rc) rc = cglow_split(ds.n_maps, ds.maps_per_sim, CGLOW_SPLIT_HOLDOUT_SIMS, 0.1, (uint64_t)seed, tr, &ntr, te, &nte);
    if (!rc && nte == 0) rc = cglow_set_error(CGLOW_EVALUE, "%s: no held-out maps", maps);
    size_t npix = (size_t)ds.height * ds.width;
    if (!rc) {
        tm = malloc(sizeof(float) * nte * npix);
        tp = malloc(sizeof(double) * nte * 2);
        rc = !tm || !tp;
    }
    for (size_t i = 0; !rc && i < nte; i++) {
        rc = cglow_dataset_read_maps(&ds, te[i], 1, tm + i * npix);
        const double *th = cglow_dataset_theta(&ds, te[i]);
        tp[2 * i] = th[0];
        tp[2 * i + 1] = th[1];
    }
    if (!rc) {
        size_t sh[3] = {nte, (size_t)ds.height, (size_t)ds.width}, sp[2] = {nte, 2};
        rc = cglow_npy_save_f32(test_maps, tm, 3, sh);
        if (!rc) rc = cglow_npy_save_f64(test_params, tp, 2, sp);
    }
    const double pts[8] = {0.15, 0.65, 0.45, 0.65, 0.15, 0.95, 0.45, 0.95};
    if (!rc) {
        size_t sc[2] = {4, 2};
        rc = cglow_npy_save_f64(cond, pts, 2, sc);
    }
    long held_sim = nte ? (long)(te[0] / (size_t)ds.maps_per_sim) : 0;
    free(tm); free(tp); free(tr); free(te);
    cglow_dataset_close(&ds);
    if (rc) return cli_fail_lib();
    char s_sim[32], s_cal[32], s_first[32];
    snprintf(s_sim, sizeof s_sim, "%ld", held_sim);
    snprintf(s_cal, sizeof s_cal, "%ld", calib < (long)nte ? calib : (long)nte);
    snprintf(s_first, sizeof s_first, "0");
    fprintf(stderr, "held out: %zu maps of %zu simulations (the first is simulation %ld)\n", nte, nte / 15, held_sim);

    if ((rc = run(&d, "sample maps at four corners of the prior box", cmd_sample, "sample", "--model", model, "--cond",
                  cond, "--n-per-cond", "6", "--temperature", "1", "--seed", s_seed2, "--out", samples, "--png",
                  samples_png, NULL)))
        return rc;
    if ((rc = run(&d, "power spectra, generated against real (marginal)", cmd_eval, "eval", "--real", maps, "--params",
                  params, "--model", model, "--out", evald, "--tag", "marginal", "--seed", s_seed2, NULL)))
        return rc;
    if ((rc = run(&d, "power spectra at a held-out simulation's parameters (conditional)", cmd_eval, "eval", "--real",
                  maps, "--params", params, "--sim", s_sim, "--model", model, "--n-gen", "60", "--out", evald, "--tag",
                  "conditional", "--seed", s_seed2, NULL)))
        return rc;
    if ((rc = run(&d, "posteriors of held-out maps", cmd_infer, "infer", "--model", model, "--maps", test_maps,
                  "--truth", test_params, "--first", s_first, "--count", "4", "--grid", "30", "--out", inferd, NULL)))
        return rc;
    if ((rc = run(&d, "calibration over held-out maps, flow against the exact likelihood", cmd_calibrate, "calibrate",
                  "--model", model, "--exact", "--maps", test_maps, "--truth", test_params, "--count", s_cal, "--grid",
                  "30", "--out", calibd, "--quiet", NULL)))
        return rc;
    rc = run(&d, "HTML report", cmd_report, "report", "--dir", out, "--title", "cglow demo: synthetic CAMELS-like maps",
             NULL);
    if (!rc) fprintf(stderr, "\ncglow demo: done in %.0f s; open %s/index.html\n", now_seconds() - d.t0, out);
    return rc;
}
