/* harness.h - the C tests' few helpers.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_STATUS(call(), TM_OK); }
 *   int main(void) { RUN(test_something); return tt_finish(); }
 *
 * A failed CHECK prints file:line and the expression and the test goes on; the
 * binary exits 1 when any check failed, 77 (ctest's skip code) when tt_skip() was
 * called and nothing failed. */
#ifndef TT_HARNESS_H
#define TT_HARNESS_H

#include <stdio.h>

#include "tmrun.h"

extern int tt_failed;
extern int tt_checks;

int tt_check(int ok, const char *file, int line, const char *expr);
int tt_check_status(tm_status got, tm_status want, const char *file, int line, const char *expr);
/* |got - want| <= tol, printing both on failure. */
int tt_check_near(double got, double want, double tol, const char *file, int line, const char *expr);

#define CHECK(e) tt_check(!!(e), __FILE__, __LINE__, #e)
#define CHECK_STATUS(call, want) tt_check_status((call), (want), __FILE__, __LINE__, #call)
#define CHECK_NEAR(got, want, tol) tt_check_near((got), (want), (tol), __FILE__, __LINE__, #got)
#define RUN(fn) tt_run(#fn, fn)

void tt_run(const char *name, void (*fn)(void));
void tt_skip(const char *why);
int tt_finish(void);

/* A fresh directory for this test binary's files (under $TMRUN_TEST_TMP or /tmp);
 * the returned path lives until exit.  tt_path joins it with name (static buffer
 * rotation of 8 entries). */
const char *tt_tmpdir(void);
const char *tt_path(const char *name);

/* Fills buf with n pseudo-random floats in [-1, 1) from a 64-bit seed. */
void tt_fill_random(float *buf, long n, unsigned long long seed);

#endif
