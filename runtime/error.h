/* error.h - the thread-local last-error message behind tm_last_error(). */
#ifndef TMI_ERROR_H
#define TMI_ERROR_H

#include "tmrun.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Formats the thread's last-error message and returns status, so a failing path
 * reads `return tmi_fail(TM_ERR_FORMAT, "%s: header: ...", path);`. */
tm_status tmi_fail(tm_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "prefix: " (context added by a caller). */
void tmi_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
