/* The HTML report of a run folder: cglow report --dir D writes D/index.html from what is in D.
 *
 * Folder layout (what the demo writes; any subset works, unknown files go under "Other"):
 *   D/commands.txt          the command lines that made the folder, one per line (shown verbatim);
 *                           D/<sub>/commands.txt too (cglow infer, calibrate and eval append
 *                           their own command line to their output folder's)
 *   D/[sub/]*.png           pictures, grouped by name: samples* and *_maps.png (maps),
 *                           pk* and eval* (power spectra), posterior* (posteriors),
 *                           calibration* (calibration), loss* (training)
 *   D/[sub/]*.json          numbers: shown as tables (scalars and short arrays; long arrays are
 *                           summarised; per-map lists show their first 5 entries)
 * One level of subfolders is scanned (e.g. D/infer/, D/eval/). */
#include "cglow.h"
#include "science/sci_json.h"
#include "util/fileio.h"
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A growing string. */
typedef struct { char *s; size_t n, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || b->oom) { va_end(ap2); return; }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)k;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = 1; va_end(ap2); return; }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap2);
    va_end(ap2);
    b->n += (size_t)k;
}
static void sb_esc(sbuf *b, const char *t)
{
    for (; t && *t; t++) {
        switch (*t) {
        case '<': sb_add(b, "&lt;"); break;
        case '>': sb_add(b, "&gt;"); break;
        case '&': sb_add(b, "&amp;"); break;
        case '"': sb_add(b, "&quot;"); break;
        default: sb_add(b, "%c", *t);
        }
    }
}

/* ---------------------------------------------------------------- files of the folder */
typedef struct { char rel[1024]; int group; } entry;
enum { G_MAPS, G_PK, G_POST, G_CAL, G_TRAIN, G_OTHER, G_N };
static const char *group_title[G_N] = {"Maps", "Power spectra", "Posteriors", "Calibration", "Training", "Other"};

static int group_of(const char *rel)
{
    const char *b = strrchr(rel, '/');
    b = b ? b + 1 : rel;
    if (!strncmp(b, "calibration", 11)) return G_CAL;
    if (!strncmp(b, "posterior", 9) || !strncmp(b, "summary", 7)) return G_POST;
    if (!strncmp(b, "samples", 7) || strstr(b, "_maps.") || !strncmp(b, "maps", 4)) return G_MAPS;
    /* by name, or by the folder cglow eval / cglow train wrote it in */
    if (!strncmp(b, "pk", 2) || !strncmp(b, "eval", 4) || strstr(b, "spectr") || !strncmp(rel, "eval/", 5)) return G_PK;
    if (!strncmp(b, "loss", 4) || !strncmp(b, "train", 5) || !strncmp(rel, "train/", 6)) return G_TRAIN;
    return G_OTHER;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->rel, ((const entry *)b)->rel); }

/* Lists *.png / *.json in dir and its direct subfolders. */
static int scan(const char *dir, const char *sub, entry **list, size_t *n, size_t *cap, int depth)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, sub[0] ? "/" : "", sub);
    DIR *d = opendir(path);
    if (!d) return depth == 0 ? cglow_set_error(CGLOW_EIO, "%s: cannot open folder", dir) : 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.")) continue;
        char rel[1024];
        if ((size_t)snprintf(rel, sizeof rel, "%s%s%s", sub, sub[0] ? "/" : "", e->d_name) >= sizeof rel) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        struct stat st;
        if (stat(full, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth == 0) scan(dir, rel, list, n, cap, 1);
            continue;
        }
        if (!ends_with(e->d_name, ".png") && !ends_with(e->d_name, ".json")) continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            entry *l = realloc(*list, nc * sizeof *l);
            if (!l) { closedir(d); return cglow_set_error(CGLOW_ENOMEM, "report: out of memory"); }
            *list = l;
            *cap = nc;
        }
        snprintf((*list)[*n].rel, sizeof(*list)[*n].rel, "%s", rel);
        (*list)[*n].group = group_of(rel);
        (*n)++;
    }
    closedir(d);
    return 0;
}

/* ---------------------------------------------------------------- JSON as a table */
static void json_rows(sbuf *b, const cJSON *j, const char *prefix, int depth)
{
    for (const cJSON *c = j->child; c; c = c->next) {
        char key[512];
        if (c->string) snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", c->string);
        else snprintf(key, sizeof key, "%s", prefix);
        if (cJSON_IsObject(c)) {
            if (depth < 3) json_rows(b, c, key, depth + 1);
            continue;
        }
        if (cJSON_IsArray(c)) {
            int n = cJSON_GetArraySize(c), all_num = 1;
            for (const cJSON *x = c->child; x; x = x->next)
                if (!cJSON_IsNumber(x) && !cJSON_IsNull(x)) all_num = 0;
            if (all_num && n <= 6) {
                sb_add(b, "<tr><td>");
                sb_esc(b, key);
                sb_add(b, "</td><td>");
                for (const cJSON *x = c->child; x; x = x->next)
                    if (cJSON_IsNumber(x)) sb_add(b, "%s%.5g", x == c->child ? "" : ", ", x->valuedouble);
                    else sb_add(b, "%snull", x == c->child ? "" : ", ");
                sb_add(b, "</td></tr>\n");
            } else if (!all_num && depth < 3) {
                /* Lists of objects (per-map results): the first 5. */
                int i = 0;
                for (const cJSON *x = c->child; x && i < 5; x = x->next, i++) {
                    char k2[600];
                    snprintf(k2, sizeof k2, "%s[%d]", key, i);
                    if (cJSON_IsObject(x)) json_rows(b, x, k2, depth + 1);
                }
                if (n > 5) { sb_add(b, "<tr><td>"); sb_esc(b, key); sb_add(b, "</td><td>... %d entries in all</td></tr>\n", n); }
            } else {
                sb_add(b, "<tr><td>");
                sb_esc(b, key);
                sb_add(b, "</td><td>[%d values]</td></tr>\n", n);
            }
            continue;
        }
        sb_add(b, "<tr><td>");
        sb_esc(b, key);
        sb_add(b, "</td><td>");
        if (cJSON_IsNumber(c)) sb_add(b, "%.6g", c->valuedouble);
        else if (cJSON_IsString(c)) sb_esc(b, c->valuestring);
        else if (cJSON_IsBool(c)) sb_add(b, "%s", cJSON_IsTrue(c) ? "true" : "false");
        else sb_add(b, "null");
        sb_add(b, "</td></tr>\n");
    }
}

int cglow_report_build(const char *dir, const char *title)
{
    entry *list = NULL;
    size_t n = 0, cap = 0;
    int rc = scan(dir, "", &list, &n, &cap, 0);
    if (rc) { free(list); return rc; }
    if (n) qsort(list, n, sizeof *list, cmp_entry);
    sbuf b = {0};
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    sb_add(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    sb_esc(&b, title ? title : "cglow report");
    sb_add(&b, "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
               "img{max-width:100%%;border:1px solid #ddd;margin:.3em 0}table{border-collapse:collapse;margin:.5em 0 1.5em}"
               "td{border:1px solid #ccc;padding:2px 8px;font-size:90%%}pre{background:#f4f4f4;padding:1em;overflow-x:auto}"
               "figure{margin:1em 0}figcaption{color:#555;font-size:90%%}</style></head><body>\n<h1>");
    sb_esc(&b, title ? title : "cglow report");
    sb_add(&b, "</h1>\n<p>Built by <code>cglow report</code> on %s from the folder <code>", when);
    sb_esc(&b, dir);
    sb_add(&b, "</code>: %zu pictures and tables. Spectra: model.md section 5; posteriors and calibration: section 6.</p>\n", n);
    /* Contents. */
    sb_add(&b, "<ul>");
    for (int g = 0; g < G_N; g++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) any |= list[i].group == g;
        if (any) sb_add(&b, "<li><a href=\"#g%d\">%s</a></li>", g, group_title[g]);
    }
    sb_add(&b, "<li><a href=\"#commands\">Commands</a></li></ul>\n");
    for (int g = 0; g < G_N; g++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) any |= list[i].group == g;
        if (!any) continue;
        sb_add(&b, "<h2 id=\"g%d\">%s</h2>\n", g, group_title[g]);
        for (size_t i = 0; i < n; i++) {
            if (list[i].group != g) continue;
            if (ends_with(list[i].rel, ".png")) {
                sb_add(&b, "<figure><img src=\"");
                sb_esc(&b, list[i].rel);
                sb_add(&b, "\" alt=\"");
                sb_esc(&b, list[i].rel);
                sb_add(&b, "\"><figcaption>");
                sb_esc(&b, list[i].rel);
                if (strstr(list[i].rel, "maps") || strstr(list[i].rel, "samples"))
                    sb_add(&b, " (log10 maps, viridis; colour bar from the 1st to the 99th percentile, range in the PNG's vmin/vmax text)");
                sb_add(&b, "</figcaption></figure>\n");
            } else {
                char full[4096];
                snprintf(full, sizeof full, "%s/%s", dir, list[i].rel);
                cJSON *j = sci_json_load(full);
                sb_add(&b, "<h3>");
                sb_esc(&b, list[i].rel);
                sb_add(&b, "</h3>\n");
                if (!j) { sb_add(&b, "<p>(not readable JSON)</p>\n"); continue; }
                sb_add(&b, "<table>\n");
                json_rows(&b, j, "", 0);
                sb_add(&b, "</table>\n");
                cJSON_Delete(j);
            }
        }
    }
    sb_add(&b, "<h2 id=\"commands\">Commands</h2>\n");
    /* dir/commands.txt, then those of the subfolders (infer, eval and calibrate log there). */
    int shown = 0;
    for (int pass = 0; pass < 2; pass++) {
        DIR *dd = pass ? opendir(dir) : NULL;
        struct dirent *e = NULL;
        do {
            char rel[1024] = "commands.txt", cpath[4096], *cmds = NULL;
            if (pass) {
                e = dd ? readdir(dd) : NULL;
                if (!e) break;
                if (e->d_name[0] == '.') continue;
                snprintf(rel, sizeof rel, "%s/commands.txt", e->d_name);
            }
            size_t clen = 0;
            snprintf(cpath, sizeof cpath, "%s/%s", dir, rel);
            if (read_file_all(cpath, &cmds, &clen) == 0) {
                if (pass) { sb_add(&b, "<h3>"); sb_esc(&b, rel); sb_add(&b, "</h3>\n"); }
                sb_add(&b, "<pre>");
                sb_esc(&b, cmds);
                sb_add(&b, "</pre>\n");
                free(cmds);
                shown++;
            }
        } while (pass);
        if (dd) closedir(dd);
    }
    if (!shown) sb_add(&b, "<p>(no commands.txt in the folder)</p>\n");
    sb_add(&b, "</body></html>\n");
    free(list);
    if (b.oom) { free(b.s); return cglow_set_error(CGLOW_ENOMEM, "report: out of memory"); }
    char out[4096];
    snprintf(out, sizeof out, "%s/index.html", dir);
    rc = atomic_write_all(out, b.s, b.n);
    free(b.s);
    return rc;
}

/* Shell-quotes one argument when it needs it. */
static void add_arg(sbuf *b, const char *a)
{
    int plain = *a != 0;
    for (const char *p = a; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("-_./=,:+@%", *p))) plain = 0;
    if (plain) { sb_add(b, "%s", a); return; }
    sb_add(b, "'");
    for (const char *p = a; *p; p++) {
        if (*p == '\'') sb_add(b, "'\\''");
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "'");
}

int cglow_report_log_command(const char *dir, int argc, char **argv)
{
    char path[4096], *old = NULL;
    size_t olen = 0;
    snprintf(path, sizeof path, "%s/commands.txt", dir);
    sbuf b = {0};
    if (read_file_all(path, &old, &olen) == 0) {
        sb_add(&b, "%s", old);
        free(old);
    }
    for (int i = 0; i < argc; i++) {
        if (i) sb_add(&b, " ");
        add_arg(&b, argv[i]);
    }
    sb_add(&b, "\n");
    if (b.oom) { free(b.s); return cglow_set_error(CGLOW_ENOMEM, "report: out of memory"); }
    int rc = atomic_write_all(path, b.s, b.n);
    free(b.s);
    return rc;
}
