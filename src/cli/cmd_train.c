/* cglow train: maps + parameters -> a trained model, with checkpoints, resume, a progress line
 * and loss curves (DIR/loss.csv per epoch, DIR/steps.csv per step).
 *
 * Resume is exact: batches depend only on (seed, epoch) (the loader's contract), so the saved
 * (epoch, batch, step), Adam moments and scheduler state reproduce an uninterrupted run. */
#include "cli/model_data.h"
#include "cli/model_flags.h"
#include "util/fileio.h"
#include "util/progress.h"
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

typedef struct {
    long epoch, batch, step;       /* epochs completed, batches of the current epoch, steps */
    long seed, batch_size, augment, split;
    double holdout, epoch_loss_sum, best_test;
    long epoch_loss_n;
} train_state;

static char *state_json(const train_state *s, double lr)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddNumberToObject(o, "batch_in_epoch", (double)s->batch);
    cJSON_AddNumberToObject(o, "step", (double)s->step);
    cJSON_AddNumberToObject(o, "lr", lr);
    cJSON_AddNumberToObject(o, "seed", (double)s->seed);
    cJSON_AddNumberToObject(o, "batch_size", (double)s->batch_size);
    cJSON_AddBoolToObject(o, "augment", s->augment != 0);
    cJSON_AddStringToObject(o, "split", s->split ? "holdout" : "within");
    cJSON_AddNumberToObject(o, "holdout_fraction", s->holdout);
    cJSON_AddNumberToObject(o, "epoch_loss_sum", s->epoch_loss_sum);
    cJSON_AddNumberToObject(o, "epoch_loss_n", (double)s->epoch_loss_n);
    if (isfinite(s->best_test)) cJSON_AddNumberToObject(o, "best_test_loss", s->best_test);
    cJSON_AddStringToObject(o, "rng", "batches and augmentation are a function of (seed, epoch): no other state");
    char *r = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return r;
}

static int parse_state(const char *json, train_state *s, const char *path)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o) return cglow_set_error(CGLOW_EFORMAT, "%s: no training state to resume from", path);
    cJSON *v;
#define NUM(key, dst) if ((v = cJSON_GetObjectItemCaseSensitive(o, key)) && cJSON_IsNumber(v)) dst = v->valuedouble
    NUM("epoch", s->epoch);
    NUM("batch_in_epoch", s->batch);
    NUM("step", s->step);
    NUM("seed", s->seed);
    NUM("batch_size", s->batch_size);
    NUM("holdout_fraction", s->holdout);
    NUM("epoch_loss_sum", s->epoch_loss_sum);
    NUM("epoch_loss_n", s->epoch_loss_n);
    NUM("best_test_loss", s->best_test);
#undef NUM
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "augment"))) s->augment = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "split")) && cJSON_IsString(v)) s->split = !strcmp(v->valuestring, "holdout");
    cJSON_Delete(o);
    return 0;
}

/* Keeps the rows of a CSV whose first column (an integer key) is <= keep_upto; atomic rewrite. */
static void csv_truncate(const char *path, long keep_upto)
{
    char *buf;
    size_t n;
    if (read_file_all(path, &buf, &n)) return;
    char *out = malloc(n + 1);
    size_t k = 0;
    int first = 1;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (first || strtol(line, NULL, 10) <= keep_upto) { memcpy(out + k, line, len); k += len; }
        first = 0;
        line = nl ? nl + 1 : NULL;
    }
    atomic_write_all(path, out, k);
    free(out);
    free(buf);
}

static FILE *csv_open(const char *path, const char *header, int append)
{
    struct stat st;
    int exists = append && stat(path, &st) == 0 && st.st_size > 0;
    FILE *f = fopen(path, exists ? "a" : "w");
    if (f && !exists) fprintf(f, "%s\n", header);
    return f;
}

/* Mean loss (nats/pixel) over the loader's maps, without augmentation. */
static double eval_loss(cglow_model *m, cglow_loader *L, float *x, float *c, double *lp, long max_maps)
{
    double s = 0;
    long cnt = 0;
    int n;
    cglow_loader_seek(L, 0, 0);
    while (cglow_loader_next_batch(L, x, c, &n) > 0 && cnt < max_maps) {
        if (cglow_log_prob(m, x, c, n, lp)) return NAN;
        for (int i = 0; i < n; i++) s += lp[i];
        cnt += n;
    }
    return cnt ? -s / cnt / (double)cglow_model_dim(m) : NAN;
}

static int save_all(cglow_model *m, cglow_trainer *t, const train_state *s, const char *mp, const char *op)
{
    char *js = state_json(s, cglow_trainer_lr(t));
    cglow_model_set_train_state(m, js);
    free(js);
    /* optimiser first: a model file always has an optimiser state at least as new */
    if (cglow_trainer_save(t, op) || cglow_model_save(m, mp)) return cli_fail_lib();
    return 0;
}

int cmd_train(int argc, char **argv)
{
    const char *maps = NULL, *params = NULL, *out = NULL, *init = NULL, *split = "within", *device = NULL;
    long epochs = -1, steps = -1, batch = 64, seed = 0, threads = 0, warmup = 0, ckpt_every = 0, patience = 10;
    long eval_max = 1024;
    double max_minutes = 0;
    double lr = 3e-4, clip = 2, factor = 0.8, min_lr = 1e-5, holdout = 0.1;
    int resume = 0, no_augment = 0, quiet = 0;
    model_flag_values mv;
    enum { NEXTRA = 24 };
    cli_flag flags[MODEL_FLAG_COUNT + NEXTRA];
    model_flags_declare(flags, &mv);
    /* --steps means optimiser steps here (model.md section 8); K is --flow-steps */
    for (int i = 0; i < MODEL_FLAG_COUNT; i++)
        if (!strcmp(flags[i].name, "steps")) { flags[i].name = "flow-steps"; flags[i].help = "K, flow steps per block"; }
    cli_flag extra[NEXTRA] = {
        {"maps", FLAG_STR, &maps, "raw linear maps .npy (N, H, W) (CAMELS layout)", 1, 0},
        {"params", FLAG_STR, &params, "CAMELS parameter table or .npy (rows, P)", 1, 0},
        {"out", FLAG_STR, &out, "run folder: model.safetensors, model.optim.safetensors, loss.csv, steps.csv", 1, 0},
        {"epochs", FLAG_INT, &epochs, "train until this many epochs (default 1000 unless --steps)", 0, 0},
        {"steps", FLAG_INT, &steps, "train until this many optimiser steps", 0, 0},
        {"batch", FLAG_INT, &batch, "maps per step (64)", 0, 0},
        {"lr", FLAG_DOUBLE, &lr, "Adam learning rate (3e-4)", 0, 0},
        {"warmup", FLAG_INT, &warmup, "linear learning-rate warm-up steps (0)", 0, 0},
        {"clip", FLAG_DOUBLE, &clip, "gradient-norm clip (2; 0 = none)", 0, 0},
        {"patience", FLAG_INT, &patience, "reduce-on-plateau patience in epochs (10)", 0, 0},
        {"factor", FLAG_DOUBLE, &factor, "reduce-on-plateau factor (0.8)", 0, 0},
        {"min-lr", FLAG_DOUBLE, &min_lr, "lowest learning rate (1e-5)", 0, 0},
        {"seed", FLAG_INT, &seed, "seed of the initialisation, shuffling and augmentation (0)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
        {"resume", FLAG_BOOL, &resume, "continue the run in --out where it stopped", 0, 0},
        {"init", FLAG_STR, &init, "start from this checkpoint (its config and preprocessing)", 0, 0},
        {"checkpoint-every", FLAG_INT, &ckpt_every, "also checkpoint every N steps (default: each epoch)", 0, 0},
        {"no-augment", FLAG_BOOL, &no_augment, "no random rolls, flips and rotations", 0, 0},
        {"split", FLAG_STR, &split, "within (HIGlow: maps 12, 13 of each simulation are test) or holdout (whole simulations)", 0, 0},
        {"holdout-fraction", FLAG_DOUBLE, &holdout, "fraction of simulations held out with --split holdout (0.1)", 0, 0},
        {"eval-max", FLAG_INT, &eval_max, "test maps scored at each epoch end (1024)", 0, 0},
        {"quiet", FLAG_BOOL, &quiet, "no progress line", 0, 0},
        {"max-minutes", FLAG_DOUBLE, &max_minutes, "also stop (with a checkpoint) after this much wall time", 0, 0},
        DEVICE_FLAG(&device),
    };
    for (int i = 0; i < NEXTRA; i++) flags[MODEL_FLAG_COUNT + i] = extra[i];
    int help, rc = cli_parse("train", "Train a conditional Glow on maps + parameters (model.md section 3).", flags,
                             MODEL_FLAG_COUNT + NEXTRA, argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if (cli_check_device(device)) return 1;
    if (batch < 1 || batch > 65536) return cli_fail("--batch must be in 1..65536");
    if (!(lr > 0) || clip < 0 || !(factor > 0 && factor <= 1) || min_lr < 0 || warmup < 0 || patience < 0)
        return cli_fail("bad optimiser flags (lr > 0, clip >= 0, 0 < factor <= 1, min-lr >= 0)");
    if (strcmp(split, "within") && strcmp(split, "holdout")) return cli_fail("--split must be within or holdout");
    if (!(holdout >= 0 && holdout < 1)) return cli_fail("--holdout-fraction must be in [0, 1)");
    if (resume && init) return cli_fail("--resume and --init exclude each other");
    if (epochs < 0 && steps < 0) epochs = 1000;
    cli_apply_threads(threads);
    if (cli_mkdirs(out)) return 1;
    char mpath[4096], opath[4096], lpath[4096], spath[4096];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", out);
    snprintf(opath, sizeof opath, "%s/model.optim.safetensors", out);
    snprintf(lpath, sizeof lpath, "%s/loss.csv", out);
    snprintf(spath, sizeof spath, "%s/steps.csv", out);

    int cols[CGLOW_MAX_COND], ncols = model_flags_cols(&mv, cols);
    if (ncols < 0) return 2;
    cglow_dataset ds;
    if (cglow_dataset_open(maps, params, ncols ? cols : NULL, ncols, &ds)) return cli_fail_lib();

    train_state st = {0, 0, 0, seed, batch, !no_augment, !strcmp(split, "holdout"), holdout, 0, INFINITY, 0};
    cglow_model *m = NULL;
    cglow_trainer *t = NULL;
    cglow_loader *L = NULL, *T = NULL;
    size_t *tr = NULL, *te = NULL, ntr = 0, nte = 0;
    float *x = NULL, *c = NULL;
    double *lp = NULL;
    FILE *lf = NULL, *sf = NULL;
    if (resume) {
        if (cglow_model_load(mpath, &m)) { rc = cli_fail_lib(); goto done; }
        if (parse_state(cglow_model_train_state(m), &st, mpath)) { rc = cli_fail_lib(); goto done; }
    } else if (init) {
        if (cglow_model_load(init, &m)) { rc = cli_fail_lib(); goto done; }
        cglow_model_set_train_state(m, NULL);
    }
    tr = malloc(sizeof(size_t) * ds.n_maps);
    te = malloc(sizeof(size_t) * ds.n_maps);
    if (!tr || !te) { rc = cli_fail("out of memory"); goto done; }
    if (cglow_split(ds.n_maps, ds.maps_per_sim, st.split ? CGLOW_SPLIT_HOLDOUT_SIMS : CGLOW_SPLIT_WITHIN_SIM,
                    st.holdout, (uint64_t)st.seed, tr, &ntr, te, &nte)) { rc = cli_fail_lib(); goto done; }
    if (ntr == 0) { rc = cli_fail("%s: no training maps after the split", maps); goto done; }
    if (!m) {
        cglow_config cfg;
        int f = mv.downsample > 0 ? (int)mv.downsample : 1;
        if (model_flags_config(&mv, ds.height / f, ds.width / f, &cfg)) { rc = 1; goto done; }
        cfg.cond_features = ds.n_cond;
        if (cglow_model_create(&cfg, (uint64_t)seed, &m)) { rc = cli_fail_lib(); goto done; }
        cglow_data_config *d = cglow_model_data(m);
        if (model_flags_data(&mv, d)) { rc = 1; goto done; }
        if (cglow_dataset_fit(&ds, tr, ntr, d)) { rc = cli_fail_lib(); goto done; }
        if (mv.prior_box && model_flags_data(&mv, d)) { rc = 1; goto done; }
    }
    if (cli_data_fits(m, &ds)) { rc = cli_fail_lib(); goto done; }
    if (cli_apply_device(m, device)) { rc = 1; goto done; }
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    o.lr = lr; o.clip_norm = clip; o.warmup_steps = (int)warmup; o.plateau_patience = (int)patience;
    o.plateau_factor = factor; o.min_lr = min_lr;
    if (cglow_trainer_create(m, &o, (int)st.batch_size, &t)) { rc = cli_fail_lib(); goto done; }
    if (resume && cglow_trainer_load(t, opath)) { rc = cli_fail_lib(); goto done; }
    cglow_loader_opts lo;
    cglow_loader_opts_default(&lo);
    lo.batch = (int)st.batch_size;
    lo.seed = (uint64_t)st.seed;
    lo.augment = (int)st.augment;
    if (cglow_loader_create(&ds, cglow_model_data(m), tr, ntr, &lo, &L)) { rc = cli_fail_lib(); goto done; }
    if (nte) {
        cglow_loader_opts to = lo;
        to.shuffle = 0;
        to.augment = 0;
        if (cglow_loader_create(&ds, cglow_model_data(m), te, nte, &to, &T)) { rc = cli_fail_lib(); goto done; }
    }
    cglow_loader_seek(L, (int)st.epoch, (size_t)st.batch);
    const size_t D = cglow_model_dim(m), P = cglow_model_config(m)->cond_features, B = (size_t)st.batch_size;
    x = malloc(sizeof(float) * B * D);
    c = malloc(sizeof(float) * B * P);
    lp = malloc(sizeof(double) * B);
    if (!x || !c || !lp) { rc = cli_fail("out of memory"); goto done; }
    if (resume) { csv_truncate(lpath, st.epoch); csv_truncate(spath, st.step); }
    lf = csv_open(lpath, "epoch,step,train_loss,train_bits_per_pixel,test_loss,test_bits_per_pixel,lr,skipped,seconds", resume);
    sf = csv_open(spath, "step,epoch,loss,bits_per_pixel,grad_norm,lr,skipped", resume);
    if (!lf || !sf) { rc = cli_fail("%s: cannot write the loss curves", out); goto done; }

    const size_t bpe = cglow_loader_batches_per_epoch(L);
    long target = steps >= 0 ? steps : (long)(epochs * bpe);
    if (steps >= 0 && epochs >= 0 && (long)(epochs * bpe) < target) target = (long)(epochs * bpe);
    if (!quiet)
        fprintf(stderr, "training %s: %zu train / %zu test maps, batch %ld, %zu steps per epoch, %zu parameters, %d threads, "
                "device %s; steps %ld -> %ld\n", mpath, ntr, nte, st.batch_size, bpe, cglow_model_num_params(m),
                cglow_get_threads(), cglow_model_device(m), st.step, target);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    progress_t pr;
    progress_start(&pr, target - st.step, "maps");
    const long step0 = st.step;
    double t0 = now_seconds(), ema = NAN;
    int out_of_time = 0;
    while (st.step < target && !stop_requested) {
        if (max_minutes > 0 && now_seconds() - t0 > 60 * max_minutes) { out_of_time = 1; break; }
        int n, got = cglow_loader_next_batch(L, x, c, &n);
        if (got < 0) { rc = cli_fail_lib(); goto done; }
        if (got == 0) {   /* the loader's epoch ended early (cannot happen with seek below); move on */
            cglow_loader_seek(L, (int)st.epoch, 0);
            continue;
        }
        cglow_step_result r;
        if (cglow_train_step(t, x, c, n, &r)) { rc = cli_fail_lib(); goto done; }
        st.step++;
        st.batch++;
        if (!r.skipped) {
            st.epoch_loss_sum += r.loss;
            st.epoch_loss_n++;
            ema = isnan(ema) ? r.loss : 0.95 * ema + 0.05 * r.loss;
        }
        fprintf(sf, "%ld,%ld,%.6f,%.6f,%.4g,%.4g,%d\n", st.step, st.epoch, r.loss, r.loss / log(2.0), r.grad_norm, r.lr, r.skipped);
        if (ckpt_every > 0 && st.step % ckpt_every == 0 && save_all(m, t, &st, mpath, opath)) { rc = 1; goto done; }
        if ((size_t)st.batch == bpe) {   /* end of an epoch */
            double train_loss = st.epoch_loss_n ? st.epoch_loss_sum / st.epoch_loss_n : NAN;
            cglow_trainer_end_epoch(t, train_loss);
            st.epoch++;
            st.batch = 0;
            st.epoch_loss_sum = 0;
            st.epoch_loss_n = 0;
            double test_loss = T ? eval_loss(m, T, x, c, lp, eval_max) : NAN;
            if (test_loss < st.best_test) st.best_test = test_loss;
            fprintf(lf, "%ld,%ld,%.6f,%.6f,%.6f,%.6f,%.6g,%ld,%.1f\n", st.epoch, st.step, train_loss, train_loss / log(2.0),
                    test_loss, test_loss / log(2.0), cglow_trainer_lr(t), cglow_trainer_skipped(t), now_seconds() - t0);
            fflush(lf);
            if (!quiet) {
                char test[48] = "no test maps";   /* e.g. fewer than 13 maps per simulation in the HIGlow split */
                if (T) snprintf(test, sizeof test, "test %.4f", test_loss);
                fprintf(stderr, "%sepoch %ld: train %.4f nats/pixel, %s, lr %.3g\n", isatty(2) ? "\r\033[K" : "",
                        st.epoch, train_loss, test, cglow_trainer_lr(t));
            }
            if (ckpt_every == 0 && save_all(m, t, &st, mpath, opath)) { rc = 1; goto done; }
            cglow_loader_seek(L, (int)st.epoch, 0);
            if (epochs >= 0 && st.epoch >= epochs) break;
        }
        if (!quiet) {
            char tail[160];
            double el = now_seconds() - t0;
            snprintf(tail, sizeof tail, "| epoch %ld step %ld loss %.4f (%.3f bits/px) lr %.2g%s", st.epoch + 1, st.step, ema,
                     ema / log(2.0), r.lr, cglow_trainer_skipped(t) ? " SKIPPED STEPS" : "");
            progress_update(&pr, st.step - step0, el > 0 ? (st.step - step0) * (double)B / el : 0, tail);
        }
    }
    if (!quiet) progress_end(&pr);
    if (save_all(m, t, &st, mpath, opath)) { rc = 1; goto done; }
    fflush(sf);
    {
        double el = now_seconds() - t0;
        printf("wrote %s (step %ld, epoch %ld, %.1f maps/s, %ld skipped steps)%s\n", mpath, st.step, st.epoch,
               el > 0 ? (st.step - step0) * (double)B / el : 0, cglow_trainer_skipped(t),
               stop_requested ? " - interrupted, resume with --resume"
               : out_of_time ? " - time budget reached, continue with --resume" : "");
        char png[4096];
        snprintf(png, sizeof png, "%s/loss.png", out);
        if (st.epoch > 0 && cglow_plot_available() && cglow_plot_loss(png, lpath))
            fprintf(stderr, "cglow: warning: %s\n", cglow_last_error());
    }
    if (stop_requested) rc = 130;
done:
    if (lf) fclose(lf);
    if (sf) fclose(sf);
    free(x); free(c); free(lp); free(tr); free(te);
    cglow_loader_free(L);
    cglow_loader_free(T);
    cglow_trainer_free(t);
    cglow_model_free(m);
    cglow_dataset_close(&ds);
    return rc;
}
