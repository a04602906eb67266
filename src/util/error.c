/* The library's error message: one line per failure, per thread. */
#include "cglow.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *cglow_last_error(void) { return last_error[0] ? last_error : "no error"; }

int cglow_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* Keep it to one line, whatever a caller passed. */
    for (char *p = last_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return code;
}
