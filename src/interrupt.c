/*
** interrupt.c: Ctrl-C (SIGINT) while a loop runs with watch_sigint. The
** signal handler only sets flags, asks a running task to stop (a count
** hook, as lua.c does for the main thread) and wakes the loop through a
** uv_async_t; the loop then leaves run() with "interrupted". What an
** interruption means (cancel main, KeyboardInterrupt) is Lua's affair.
*/
#include <pthread.h>
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
/* The host's disposition, back after run() and after a close's wait: never
** one of this file's handlers (see read_host). */
static struct sigaction saved;

/* The registry key of the function that makes the KeyboardInterrupt value. */
static const char interrupt_key = 'K';


/* In a handler of ours: the host's disposition takes SIGINT back and gets
** this one (raised now, delivered when the handler returns). */
static void to_host (int sig) {
  sigaction(sig, &saved, NULL);
  raise(sig);
}


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
    ** host's back (C's system(), called in another thread by a C library,
    ** restores what it found when it started): the host's gets the signal */
    to_host(sig);
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


/* Ctrl-C while a loop's close waits for its worker threads (worker.c): the
** wait ends as if its deadline had passed, and the signal goes on to the
** host's disposition (SIG_DFL ends the process; lua.c's handler stops the
** Lua code that closed the loop once the close returns). A wait in C
** cannot be stopped by a handler that only sets a Lua hook. */
static volatile sig_atomic_t close_interrupted;

static void on_close_signal (int sig) {
  close_interrupted = 1;
  to_host(sig);
}


/* SIGINT's disposition now becomes 'saved', the host's, unless it is one
** of ours: C's system() (called in another thread by a C library: a worker
** state's os.execute is not it, see worker.c) puts back, when its
** command ends, the handler it found when it started, which may be ours
** after we had put the host's back; 'saved' still holds the host's then
** (taking ours would make a handler that re-raises to itself for ever).
** Returns 0 if the host ignores SIGINT (a program started in the
** background: Ctrl-C is not meant for it) or it cannot be read. */
static int read_host (void) {
  struct sigaction now;
  if (sigaction(SIGINT, NULL, &now) != 0) return 0;
  if ((now.sa_flags & SA_SIGINFO) ||
      (now.sa_handler != on_signal && now.sa_handler != on_close_signal))
    saved = now;
  return (saved.sa_flags & SA_SIGINFO) || saved.sa_handler != SIG_IGN;
}


/* Block SIGINT in this thread ('old': the mask to put back), while 'saved'
** changes: a stale handler of ours reads it. */
static void block_sigint (sigset_t *old) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, old);
}


static int install (void (*handler) (int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGINT, &sa, NULL) == 0;
}


/* run() starts: watch SIGINT for 'lp', unless the host ignores it, or 'lp'
** runs in a worker thread (worker.c): Ctrl-C is for the program's own
** loop, and 'watching' and 'saved' are the process's. */
void asyncio_sigint_watch (Loop *lp) {
  sigset_t old;
  /* a loop run from inside another's task leaves Ctrl-C to the outer one */
  if (asyncio_in_worker() || watching != NULL) return;
  block_sigint(&old);
  if (read_host()) {
    lp->interrupt_pending = 0;
    watching = lp;
    if (!install(on_signal)) watching = NULL;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}


/* A loop's close starts waiting for its worker threads: Ctrl-C ends the
** wait (asyncio_sigint_close_interrupted), unless the host ignores it, a
** running loop watches it (a loop closed inside another's task: the outer
** one's second Ctrl-C ends the process) or this is a worker thread's loop
** (SIGINT is the program's loop's). Returns whether it does. */
int asyncio_sigint_close_begin (void) {
  sigset_t old;
  int caught;
  if (asyncio_in_worker() || watching != NULL) return 0;
  block_sigint(&old);
  close_interrupted = 0;
  caught = read_host() && install(on_close_signal);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return caught;
}


int asyncio_sigint_close_interrupted (void) {
  return close_interrupted;
}


/* The close's wait is over: the host's disposition comes back (again, if
** on_close_signal put it back already). */
void asyncio_sigint_close_end (void) {
  sigaction(SIGINT, &saved, NULL);
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
