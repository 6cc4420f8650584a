/*
** malloccount.c: an LD_PRELOAD library for make bench-profile. It counts
** the fresh allocations a process makes (malloc, calloc, realloc of NULL)
** and their bytes, and writes "mallocs N bytes B" at exit to the file named
** by $MALLOCCOUNT_OUT. Counts, not timings: the same run gives the same
** numbers, so the difference of two runs is the cost of the extra work.
*/
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc (size_t);
extern void *__libc_calloc (size_t, size_t);
extern void *__libc_realloc (void *, size_t);

static unsigned long long nallocs, nbytes;

void *malloc (size_t n) {
  nallocs++; nbytes += n;
  return __libc_malloc(n);
}

void *calloc (size_t a, size_t b) {
  nallocs++; nbytes += a * b;
  return __libc_calloc(a, b);
}

void *realloc (void *p, size_t n) {
  if (p == NULL) { nallocs++; nbytes += n; }
  return __libc_realloc(p, n);
}

__attribute__((destructor)) static void report (void) {
  const char *path = getenv("MALLOCCOUNT_OUT");
  FILE *f;
  if (path == NULL || (f = fopen(path, "w")) == NULL) return;
  fprintf(f, "mallocs %llu bytes %llu\n", nallocs, nbytes);
  fclose(f);
}
