/*
** no_worker_states.c: an LD_PRELOAD shim for threads_spec. Lua's default
** allocator makes every new block with realloc(NULL, n); this shim fails
** those made by any thread but the process's main one, so a worker thread's
** luaL_newstate returns NULL: the pool's "cannot start a worker" path, which
** no real machine reaches on demand.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

void *realloc (void *block, size_t size) {
  static void *(*next)(void *, size_t) = NULL;
  if (next == NULL) next = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  if (block == NULL && size > 0 && syscall(SYS_gettid) != getpid()) return NULL;
  return next(block, size);
}
