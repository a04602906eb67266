/* Atomic file writes (temporary file in the same folder, fsync, rename) and whole-file reads. */
#ifndef CGLOW_FILEIO_H
#define CGLOW_FILEIO_H
#include <stdio.h>
#include <stddef.h>

typedef struct {
    FILE *f;
    char final_path[4096];
    char tmp_path[4096];
} atomic_file;

/* Opens a temporary file beside path. Returns 0 or CGLOW_EIO (message set). */
int atomic_open(atomic_file *a, const char *path);
/* Flushes, fsyncs and renames over the final path; on any error removes the temporary file. */
int atomic_commit(atomic_file *a);
/* Abandons the write (removes the temporary file). */
void atomic_abort(atomic_file *a);
/* Writes a whole buffer atomically. */
int atomic_write_all(const char *path, const void *data, size_t n);
/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int read_file_all(const char *path, char **data, size_t *n);
#endif
