/*
** host.c: the allocation-failure harness (make check). Runs a scenario
** (a Lua file) again and again in a fresh Lua state whose allocator fails
** at the k-th allocation of the scenario's run, for every k up to the
** run's total (or a sample of them), then checks the scenario's
** invariants with the allocator working again, closes the state, and
** goes on. Any crash, sanitizer report, broken invariant or hang fails.
**
**   host [--sample N] [--seed S] [--only K] SCENARIO.lua
**
** A scenario returns a table {run = fn, check = fn}: run() does the work
** (its errors, memory errors among them, are expected); check(ok, err)
** must return true, or false and what is wrong, once failures stop. Once
** the state is closed the process must have no more descriptors open than
** before it.
*/
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* How many descriptors the process has open. */
static int count_fds (void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;  /* the directory's own */
}


/* A run that takes longer than this has hung: the harness fails. */
#define RUN_SECONDS  60

static volatile long current_k;

static void on_alarm (int sig) {
  char msg[80];
  int n = snprintf(msg, sizeof msg, "host: k=%ld: the run hangs\n", current_k);
  (void)sig;
  if (n > 0) (void)!write(2, msg, (size_t)n);
  _exit(1);
}


typedef struct Counter {
  long count;      /* allocations made since counting began */
  long fail_at;    /* the allocation to fail, 0: none */
  int counting;
} Counter;

/*
** The allocator: realloc, but for the 'fail_at'-th allocation (a new
** block or a growing one) and the one after it, which fail. Lua answers a
** failure with an emergency collection and one more try: failing both
** makes the failure reach the program as a memory error.
*/
static void *alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  Counter *c = (Counter *)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (c->counting && (ptr == NULL || nsize > osize)) {
    c->count++;
    if (c->fail_at > 0 && (c->count == c->fail_at || c->count == c->fail_at + 1))
      return NULL;
  }
  return realloc(ptr, nsize);
}


/* The message handler: a string error gets its traceback; any other error
** value stays itself, for the check to see. */
static int report (lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) luaL_traceback(L, L, lua_tostring(L, 1), 1);
  else lua_settop(L, 1);
  return 1;
}


/*
** One run with allocation 'k' failing (0: none). Returns the number of
** allocations the run made, or -1 if the scenario could not be loaded or
** its check failed (said on stderr).
*/
static long run_once (const char *path, long k) {
  Counter c = {0, 0, 0};
  int fds = count_fds();
  lua_State *L = lua_newstate(alloc, &c);
  long total = -1;
  current_k = k;
  alarm(RUN_SECONDS);
  if (L == NULL) { fprintf(stderr, "host: cannot create a Lua state\n"); return -1; }
  luaL_openlibs(L);
  lua_pushcfunction(L, report);
  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 1) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return -1;
  }
  /* stack: report, scenario */
  lua_getfield(L, 2, "run");
  c.count = 0;
  c.fail_at = k;
  c.counting = 1;
  {
    int status = lua_pcall(L, 0, 1, 1);  /* stack: report, scenario, result or error */
    c.counting = 0;
    c.fail_at = 0;
    if (getenv("ALLOCFAIL_VERBOSE") != NULL)
      fprintf(stderr, "host: k=%ld: the run %s: %s\n", k, status == LUA_OK ? "returned" : "failed",
              luaL_tolstring(L, -1, NULL)), lua_pop(L, 1);
    total = c.count;
    lua_getfield(L, 2, "check");
    lua_pushboolean(L, status == LUA_OK);
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 2, 2, 1) != LUA_OK) {
      fprintf(stderr, "host: k=%ld: the check raised: %s\n", k, lua_tostring(L, -1));
      total = -1;
    }
    else if (!lua_toboolean(L, -2)) {
      fprintf(stderr, "host: k=%ld: %s\n", k, luaL_optstring(L, -1, "the check failed"));
      total = -1;
    }
  }
  lua_close(L);  /* every finalizer runs: no crash there either */
  alarm(0);
  if (total >= 0 && count_fds() != fds) {
    fprintf(stderr, "host: k=%ld: %d descriptors left open\n", k, count_fds() - fds);
    total = -1;
  }
  return total;
}


/* A small generator for --sample (its own: the same k on every machine). */
static unsigned long next_random (unsigned long *s) {
  *s = *s * 6364136223846793005UL + 1442695040888963407UL;
  return *s >> 33;
}


int main (int argc, char **argv) {
  long total, k, sample = 0, failures = 0, runs = 0, only = 0;
  unsigned long seed = 1;
  const char *path = NULL;
  int i;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--sample") == 0 && i + 1 < argc) sample = atol(argv[++i]);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = atol(argv[++i]);
    else path = argv[i];
  }
  signal(SIGALRM, on_alarm);
  if (path == NULL) {
    fprintf(stderr, "usage: host [--sample N] [--seed S] SCENARIO.lua\n");
    return 2;
  }
  if (only > 0) return run_once(path, only) < 0;  /* replay one failure */
  total = run_once(path, 0);
  if (total < 0) return 1;
  if (sample <= 0 || sample >= total) {  /* every allocation in turn */
    for (k = 1; k <= total; k++) {
      runs++;
      if (run_once(path, k) < 0) failures++;
    }
  }
  else {  /* a fixed sample: the first thousand, then chosen with 'seed' */
    for (k = 1; k <= total && runs < sample; k++) {
      if (k > 1000) k = 1000 + (long)(next_random(&seed) % (unsigned long)(total - 1000)) + 1;
      runs++;
      if (run_once(path, k) < 0) failures++;
    }
  }
  printf("%s: %ld allocations, %ld runs with one failing, %ld failed\n", path, total, runs,
         failures);
  return failures > 0;
}
