/*
** interrupt.c: Ctrl-C (SIGINT) while a loop runs with watch_sigint. The
** signal handler only sets flags, asks a running task to stop (a count
** hook, as lua.c does for the main thread) and wakes the loop through a
** uv_async_t; the loop then leaves run() with "interrupted". What an
** interruption means (cancel main, KeyboardInterrupt) is Lua's affair.
*/
#include <signal.h>
#include <string.h>

#include "asyncio.h"

/* Instructions a task may still run after Ctrl-C before it is stopped:
** time to reach its next await, where the loop can cancel it gracefully. */
#define GRACE_COUNT  100000

/* The loop that watches SIGINT now. A signal handler has no other way to
** find it; one loop runs at a time in a thread, and only the thread that
** loaded asyncio runs loops that watch SIGINT. */
static Loop *volatile watching = NULL;
static struct sigaction saved;  /* the host's disposition, back after run() */

/* The registry key of the function that makes the KeyboardInterrupt value. */
static const char interrupt_key = 'K';


/* The hook set on the running task by the handler: raise KeyboardInterrupt
** there, once the task runs the program's own code. */
static void interrupt_hook (lua_State *L, lua_Debug *ar) {
  if (lua_getinfo(L, "S", ar) && asyncio_is_library(ar->source)) {  /* state half updated? */
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 100);  /* a little later */
    return;
  }
  lua_sethook(L, NULL, 0, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &interrupt_key);
  if (lua_type(L, -1) == LUA_TFUNCTION) lua_call(L, 0, 1);
  else { lua_pop(L, 1); lua_pushliteral(L, "interrupted!"); }
  lua_error(L);
}


/*
** SIGINT. The first one during run() marks the loop interrupted, wakes it
** (uv_async_send is async-signal-safe) and gives the task running now, if
** any, GRACE_COUNT instructions before KeyboardInterrupt is raised in it:
** a task that computes without awaiting is stopped too. A second one
** before the loop has taken the first in ends the process, as lua.c's
** second Ctrl-C does: a task stuck inside a C function cannot be stopped.
** (Every function it calls is async-signal-safe.)
*/
static void on_signal (int sig) {
  Loop *lp = watching;
  if (lp == NULL) {
    /* no run() watches: this handler came back after run() had put the
    ** host's back (C's system(), run by os.execute in a worker thread,
    ** restores what it found when it started): the host's gets the signal */
    sigaction(sig, &saved, NULL);
    raise(sig);  /* blocked until this handler returns */
    return;
  }
  if (lp->interrupt_pending) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  lp->interrupt_pending = 1;
  lp->interrupted = 1;
  if (lp->resuming != NULL)
    lua_sethook(lp->resuming, interrupt_hook, LUA_MASKCOUNT, GRACE_COUNT);
  uv_async_send(&lp->wakeup);
}


/* The wake-up handle's callback: leave uv_run, so run_inner sees the flag. */
void asyncio_on_wakeup (uv_async_t *a) {
  uv_stop(a->loop);
}


/* run() starts: watch SIGINT for 'lp', unless the host ignores it (a
** program started in the background: Ctrl-C is not meant for it), or 'lp'
** runs in a worker thread (worker.c): Ctrl-C is for the program's own
** loop, and 'watching' and 'saved' are the process's. */
void asyncio_sigint_watch (Loop *lp) {
  struct sigaction sa;
  /* a loop run from inside another's task leaves Ctrl-C to the outer one
  ** (its 'saved' would be our handler, and its end would leave that on) */
  if (asyncio_in_worker() || watching != NULL) return;
  if (sigaction(SIGINT, NULL, &saved) != 0) return;
  if (!(saved.sa_flags & SA_SIGINFO) && saved.sa_handler == SIG_IGN) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  lp->interrupt_pending = 0;
  watching = lp;
  if (sigaction(SIGINT, &sa, NULL) != 0) watching = NULL;
}


/* Does a running loop watch SIGINT now? */
int asyncio_sigint_watched (void) {
  return watching != NULL;
}


/* run() ends: the host's disposition comes back. */
void asyncio_sigint_unwatch (Loop *lp) {
  if (watching != lp) return;
  sigaction(SIGINT, &saved, NULL);
  watching = NULL;
  lp->interrupt_pending = 0;
}


/* The loop has resumed 'co' and got it back: a hook the handler set on it
** has no task to stop any more. */
void asyncio_interrupt_done (lua_State *co) {
  if (lua_gethook(co) == interrupt_hook) lua_sethook(co, NULL, 0, 0);
}


/* core.interrupt_config(make, libdir): make() returns the value raised in a
** task that Ctrl-C stops; 'libdir' is where the library's files are (see
** asyncio_is_library). */
static int core_interrupt_config (lua_State *L) {
  size_t n;
  const char *dir;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  dir = luaL_checklstring(L, 2, &n);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_key);
  asyncio_set_libsource(dir, n);
  return 0;
}


void asyncio_interrupt_open (lua_State *L) {
  static const luaL_Reg module[] = {{"interrupt_config", core_interrupt_config}, {NULL, NULL}};
  asyncio_setfuncs(L, module);
}
