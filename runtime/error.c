/* error.c - status names and the thread-local last-error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { TMI_ERROR_CAP = 1024 };

static _Thread_local char last_error[TMI_ERROR_CAP];

const char *tm_last_error(void) { return last_error; }

const char *tm_version(void) { return "0.1.0"; }

const char *tm_status_name(tm_status status)
{
    switch (status) {
    case TM_OK: return "TM_OK";
    case TM_ERR_INVALID_ARG: return "TM_ERR_INVALID_ARG";
    case TM_ERR_IO: return "TM_ERR_IO";
    case TM_ERR_FORMAT: return "TM_ERR_FORMAT";
    case TM_ERR_NOMEM: return "TM_ERR_NOMEM";
    case TM_ERR_UNSUPPORTED: return "TM_ERR_UNSUPPORTED";
    case TM_ERR_NOT_FOUND: return "TM_ERR_NOT_FOUND";
    case TM_ERR_STATE: return "TM_ERR_STATE";
    case TM_ERR_DEVICE: return "TM_ERR_DEVICE";
    case TM_ERR_INTERNAL: return "TM_ERR_INTERNAL";
    }
    return "TM_ERR_UNKNOWN";
}

tm_status tmi_fail(tm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void tmi_error_prefix(const char *fmt, ...)
{
    char prefix[TMI_ERROR_CAP];
    char old[TMI_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* prefix ": " old, truncated to the buffer */
    size_t n = strlen(prefix);
    if (n > TMI_ERROR_CAP - 3) n = TMI_ERROR_CAP - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t rest = TMI_ERROR_CAP - 1 - (n + 2);
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = 0;
}
