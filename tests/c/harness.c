/* harness.c - see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tt_failed;
int tt_checks;
static int tt_skipped;
static const char *tt_current = "";

int tt_check(int ok, const char *file, int line, const char *expr)
{
    tt_checks++;
    if (!ok) {
        tt_failed++;
        fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", file, line, tt_current, expr);
    }
    return ok;
}

int tt_check_status(tm_status got, tm_status want, const char *file, int line, const char *expr)
{
    tt_checks++;
    if (got != want) {
        tt_failed++;
        fprintf(stderr, "%s:%d: %s: %s returned %s, want %s (last error: %s)\n", file, line, tt_current,
                expr, tm_status_name(got), tm_status_name(want), tm_last_error());
        return 0;
    }
    return 1;
}

int tt_check_near(double got, double want, double tol, const char *file, int line, const char *expr)
{
    tt_checks++;
    if (!(fabs(got - want) <= tol)) {
        tt_failed++;
        fprintf(stderr, "%s:%d: %s: %s = %.9g, want %.9g (tol %.3g)\n", file, line, tt_current, expr, got,
                want, tol);
        return 0;
    }
    return 1;
}

void tt_run(const char *name, void (*fn)(void))
{
    int before = tt_failed;
    tt_current = name;
    fn();
    fprintf(stderr, "%s %s\n", tt_failed == before ? "ok  " : "FAIL", name);
}

void tt_skip(const char *why)
{
    tt_skipped = 1;
    fprintf(stderr, "skip: %s\n", why);
}

int tt_finish(void)
{
    fprintf(stderr, "%d checks, %d failed\n", tt_checks, tt_failed);
    if (tt_failed) return 1;
    return tt_skipped ? 77 : 0;
}

const char *tt_tmpdir(void)
{
    static char dir[512];
    if (dir[0]) return dir;
    const char *base = getenv("TMRUN_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(dir, sizeof dir, "%s/tt-%ld", base, (long)getpid());
    mkdir(dir, 0755);
    return dir;
}

const char *tt_path(const char *name)
{
    static char bufs[8][768];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", tt_tmpdir(), name);
    return b;
}

void tt_fill_random(float *buf, long n, unsigned long long seed)
{
    unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (long i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}
