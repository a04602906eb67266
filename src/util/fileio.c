#include "util/fileio.h"
#include "cglow.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_open(atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    if (strlen(path) + 16 >= sizeof a->tmp_path)
        return cglow_set_error(CGLOW_EARG, "%s: path too long", path);
    strcpy(a->final_path, path);
    snprintf(a->tmp_path, sizeof a->tmp_path, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp_path);
    if (fd < 0) return cglow_set_error(CGLOW_EIO, "%s: cannot create: %s", path, strerror(errno));
    /* mkstemp makes the file 0600; give it the permissions an ordinary create would */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* not fatal: the file is still written */ }
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        close(fd);
        unlink(a->tmp_path);
        return cglow_set_error(CGLOW_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    return 0;
}

int atomic_commit(atomic_file *a)
{
    int bad = ferror(a->f);
    if (fflush(a->f) != 0) bad = 1;
    if (!bad && fsync(fileno(a->f)) != 0) bad = 1;
    int err = errno;
    if (fclose(a->f) != 0) bad = 1;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp_path);
        return cglow_set_error(CGLOW_EIO, "%s: write failed: %s", a->final_path, strerror(err));
    }
    if (rename(a->tmp_path, a->final_path) != 0) {
        err = errno;
        unlink(a->tmp_path);
        return cglow_set_error(CGLOW_EIO, "%s: cannot rename into place: %s", a->final_path, strerror(err));
    }
    return 0;
}

void atomic_abort(atomic_file *a)
{
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp_path);
}

int atomic_write_all(const char *path, const void *data, size_t n)
{
    atomic_file a;
    int rc = atomic_open(&a, path);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, a.f) != n) {
        atomic_abort(&a);
        return cglow_set_error(CGLOW_EIO, "%s: write failed", path);
    }
    return atomic_commit(&a);
}

int read_file_all(const char *path, char **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return cglow_set_error(CGLOW_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(f); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) { free(buf); fclose(f); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return cglow_set_error(CGLOW_EIO, "%s: read error", path); }
    buf[len] = 0;
    *data = buf;
    *n = len;
    return 0;
}
