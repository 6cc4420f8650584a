/*
** worker.c: worker threads. A Pool owns up to 'size' threads; each runs a
** Lua state of its own for its whole life (a lua_State cannot be shared
** between threads), made with luaL_newstate (the C library's allocator,
** which is thread-safe). A call is a Job: the function's bytecode and its
** arguments copied into a buffer (copy.c); a worker takes it from the
** queue, runs it, copies the results (or the error) back into the Job and
** hands it to the loop through the pool's uv_async_t.
**
** These are the library's own threads, not libuv's pool that files and
** name lookups use: a slow call cannot starve a getaddrinfo.
**
** Who owns what:
** - A Job is the loop thread's, but for its time in the queue and in a
**   worker (under the pool's lock) and its run (the worker's alone). A
**   CallBox (the userdata Lua waits on) points at it; collected first, the
**   Job is freed when it comes back.
** - A Pool is freed by whoever drops the last of its references: one for
**   the loop side (dropped when its async handle is closed) and one per
**   live thread. So a worker stuck in C past the loop's close (reported,
**   detached) keeps it until it comes back.
** - Each worker closes its own Lua state, in its own thread, once.
**
** What a call means (results, errors, cancellation) is threads.lua's.
*/
#define _GNU_SOURCE  /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lualib.h>

#include "asyncio.h"

#define ASYNCIO_POOL "asyncio.Pool"
#define ASYNCIO_CALL "asyncio.WorkerCall"

typedef struct CallBox CallBox;
typedef struct Pool Pool;
typedef struct PoolBox { Pool *p; } PoolBox;  /* NULL once closed or gone */

enum { OUT_OK, OUT_ERROR, OUT_CANCELLED, OUT_FAILED };

typedef struct Job {
  struct Job *next;
  Pool *pool;                /* while queued or running */
  CallBox *box;              /* loop thread only; NULL once collected */
  int cancelled;             /* under the lock: not to be started */
  int outcome;               /* OUT_*: what 'out' holds */
  char *code;                /* the function's bytecode */
  size_t ncode;
  CopyBuf in;                /* the arguments */
  CopyBuf out;               /* OUT_OK: the results; OUT_ERROR: message,
                             ** traceback and the error value */
  char *failure;             /* OUT_FAILED: why (malloc'd), or NULL: no memory */
} Job;

struct CallBox {
  Job *job;                  /* NULL once the loop closed under it */
  lua_State *waiter;
  int submitted, delivered;
};

typedef struct Worker {
  uv_thread_t tid;
  Pool *pool;
  Job *job;                  /* the one it runs, under the lock */
  CopyBuf initout;           /* init's error, on its way out */
  int started;               /* a thread runs (or ran) in this slot */
  int exited;                /* ... and has left worker_main (under the lock) */
  int detached;              /* ... left running at the loop's close */
} Worker;

/* The thread that loaded the module first: the program's own. A loop run
** in any other (a worker that requires asyncio) must not take Ctrl-C,
** signal handlers and the other process-wide settings from the loop of
** the program's thread. (No thread-local variable: in a module loaded
** with dlopen, glibc allocates those on a thread's first use and aborts
** the process when it cannot.) */
static pthread_t owner;
static int owner_known;

void asyncio_note_owner (void) {
  if (!owner_known) {  /* before any worker exists: they all start after it */
    owner = pthread_self();
    owner_known = 1;
  }
}

int asyncio_in_worker (void) {
  return owner_known && !pthread_equal(pthread_self(), owner);
}

struct Pool {
  asyncio_closer closer;     /* first: the loop closes leftovers with it */
  uv_async_t async;          /* a worker finished a job, or exited */
  Loop *lp;
  Pool *next;                /* the loop's list (lp->pools) */
  uv_mutex_t mu;             /* everything below */
  uv_cond_t work;            /* a job was queued, or the pool closes */
  uv_cond_t gone;            /* a worker exited */
  Job *head, *tail;          /* queued */
  Job *done, *donetail;      /* finished, for the loop */
  int size;
  int alive;                 /* threads started and not exited */
  int idle;                  /* ... of them waiting for a job */
  int queued;                /* jobs in the queue */
  int running;               /* jobs a worker runs now */
  int closing;               /* no more calls; workers leave once the queue is empty */
  int async_open;            /* workers may send on 'async' */
  int refs;
  char *broken;              /* init's error: the pool runs nothing more */
  char *startfail;           /* why the last worker could not start, or NULL */
  char *init;                /* init's bytecode, or NULL */
  size_t ninit;
  CopyBuf initargs;          /* its arguments (read by every worker, written by none) */
  char *path, *cpath;        /* the loop's package.path and cpath, for require */
  double join_timeout;       /* seconds the loop's close waits for a worker */
  struct PoolBox *box;       /* loop side: the userdata, or NULL */
  int inflight;              /* loop side: jobs given and not handed back */
  Worker *workers;           /* 'size' of them */
};


/* Jobs ------------------------------------------------------------------------ */

static void free_job (Job *j) {
  free(j->code);
  asyncio_copy_free(&j->in);
  asyncio_copy_free(&j->out);
  free(j->failure);
  free(j);
}


/* A Job that ends without running: 'why' says what it is to raise. */
static void fail_job (Job *j, int outcome, const char *why) {
  j->outcome = outcome;
  free(j->failure);
  j->failure = why ? strdup(why) : NULL;
}


/* Under the lock: hand finished Job 'j' to the loop. */
static void push_done (Pool *p, Job *j) {
  j->next = NULL;
  if (p->donetail) p->donetail->next = j; else p->done = j;
  p->donetail = j;
  if (p->async_open) uv_async_send(&p->async);
}


static void free_pool (Pool *p) {
  Job *j;
  while ((j = p->done) != NULL) { p->done = j->next; free_job(j); }
  while ((j = p->head) != NULL) { p->head = j->next; free_job(j); }
  uv_mutex_destroy(&p->mu);
  uv_cond_destroy(&p->work);
  uv_cond_destroy(&p->gone);
  free(p->broken);
  free(p->startfail);
  free(p->init);
  asyncio_copy_free(&p->initargs);
  free(p->path);
  free(p->cpath);
  free(p->workers);
  free(p);
}


/* Drop one of the pool's references (under no lock); the last frees it. */
static void unref_pool (Pool *p) {
  int last;
  uv_mutex_lock(&p->mu);
  last = --p->refs == 0;
  uv_mutex_unlock(&p->mu);
  if (last) free_pool(p);
}


/* The worker thread ------------------------------------------------------- */

static const char cache_key = 'c', traceback_key = 't';

/* Message handler: keep the traceback aside, the error value as it is. */
static int keep_traceback (lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
  lua_settop(L, 1);
  return 1;
}


/* Push the function of bytecode 'code': loaded once per state and kept,
** up to 64 of them (a program that makes new functions without end must
** not grow its workers without end: the cache then starts afresh). */
static void push_function (lua_State *L, const char *code, size_t n) {
  lua_Integer count;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  lua_pushlstring(L, code, n);
  if (lua_rawget(L, -2) == LUA_TFUNCTION) { lua_remove(L, -2); return; }
  lua_pop(L, 1);
  lua_pushliteral(L, "n");  /* no bytecode is "n": it starts with ESC "Lua" */
  lua_rawget(L, -2);
  count = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (count >= 64) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
    count = 0;
  }
  lua_pushliteral(L, "n");
  lua_pushinteger(L, count + 1);
  lua_rawset(L, -3);
  if (luaL_loadbufferx(L, code, n, "=worker", "b") != LUA_OK) lua_error(L);
  lua_pushlstring(L, code, n);
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  lua_remove(L, -2);
}


/* luaL_tolstring, for a protected call: an error value's __tostring may
** raise too. */
static int tostring_body (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}


/* More results than this do not come back (the loop's C stack takes them
** all at once). */
#define MAXRESULTS 8000

/* Run function 'code' with the values of 'in' in L (protected by the
** caller); the results (if 'results': init's are dropped), or the error
** (message, traceback, value), go to 'out'. Returns the outcome. */
static int run_code (lua_State *L, const char *code, size_t ncode, const CopyBuf *in, CopyBuf *out,
                     int results) {
  char why[ASYNCIO_WHYLEN];
  int base, nargs;
  lua_pushcfunction(L, keep_traceback);
  base = lua_gettop(L);
  push_function(L, code, ncode);
  nargs = asyncio_copy_read(L, in->p, in->n);
  if (lua_pcall(L, nargs, results ? LUA_MULTRET : 0, base) == LUA_OK) {
    int nres = lua_gettop(L) - base;
    int pos = nres > MAXRESULTS ? -1 : asyncio_copy_write(L, base + 1, nres, out, why);
    if (pos == 0) return OUT_OK;
    lua_settop(L, base);
    if (pos < 0)
      lua_pushfstring(L, "the worker's function returned %d values; at most %d come back",
                      nres, MAXRESULTS);
    else
      lua_pushfstring(L, "result %d of the worker's function is %s, which cannot be copied "
                         "back from a worker thread", pos, why);
    lua_pushliteral(L, "");
  }
  else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &traceback_key);
    if (lua_type(L, -1) != LUA_TSTRING) { lua_pop(L, 1); lua_pushliteral(L, ""); }
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &traceback_key);
    lua_pushcfunction(L, tostring_body);  /* the message */
    lua_pushvalue(L, base + 1);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      lua_pop(L, 1);
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, base + 1));
    }
    lua_insert(L, -2);
    lua_pushvalue(L, base + 1);         /* the value itself, if it copies */
    if (asyncio_copy_write(L, lua_gettop(L) - 2, 3, out, why) == 0) return OUT_ERROR;
    lua_pop(L, 1);
  }
  asyncio_copy_write(L, lua_gettop(L) - 1, 2, out, why);
  return OUT_ERROR;
}


static int run_job_body (lua_State *L) {
  Job *j = (Job *)lua_touserdata(L, 1);
  j->outcome = run_code(L, j->code, j->ncode, &j->in, &j->out, 1);
  return 0;
}


/* Run 'j' in L; whatever goes wrong around the function itself (loading
** it, copying, memory) fails the job with its message. */
static void run_job (lua_State *L, Job *j) {
  lua_settop(L, 0);
  lua_pushcfunction(L, run_job_body);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fail_job(j, OUT_FAILED, msg ? msg : "error in a worker thread");
  }
  lua_settop(L, 0);
}


/*
** os.execute in a worker's state. C's system() ignores SIGINT and SIGQUIT
** in the whole process while its command runs, then puts back the handlers
** it found: from a worker thread that races with the loop's thread (a
** Ctrl-C lost meanwhile, or a handler of the library's put back after its
** run had ended, or system()'s own SIG_IGN taken for the host's). This one
** runs "/bin/sh -c command" as system() does, the command with SIGINT and
** SIGQUIT at their defaults and no signal blocked (the worker blocks them
** all), touches no handler, and answers as os.execute does.
*/
static int worker_execute (lua_State *L) {
  const char *cmd = luaL_optstring(L, 1, NULL);
  char *argv[4];
  posix_spawnattr_t attr;
  sigset_t none, dfl;
  pid_t pid;
  int status = 0, r;
  if (cmd == NULL) {  /* is there a shell? */
    lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
    return 1;
  }
  argv[0] = (char *)"sh"; argv[1] = (char *)"-c"; argv[2] = (char *)cmd; argv[3] = NULL;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGQUIT);
  if ((r = posix_spawnattr_init(&attr)) == 0) {
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    r = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
  }
  if (r == 0) {
    while ((r = waitpid(pid, &status, 0)) == -1 && errno == EINTR) {}
    r = r == -1 ? errno : 0;
  }
  if (r != 0) { errno = r; return luaL_execresult(L, -1); }
  errno = 0;  /* (luaL_execresult reads a non-zero status with errno set as a failure to run) */
  return luaL_execresult(L, status);
}


/* A worker's state: the standard libraries (os.execute: worker_execute),
** the cache, the paths. */
static int open_state (lua_State *L) {
  Pool *p = (Pool *)lua_touserdata(L, 1);
  luaL_openlibs(L);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, worker_execute);
  lua_setfield(L, -2, "execute");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  lua_getglobal(L, "package");
  lua_pushstring(L, p->path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, p->cpath);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return 0;
}


/* Then init, whose error is raised as its message. */
static int run_init (lua_State *L) {
  Worker *w = (Worker *)lua_touserdata(L, 1);
  Pool *p = w->pool;
  if (p->init != NULL && run_code(L, p->init, p->ninit, &p->initargs, &w->initout, 0) != OUT_OK) {
    lua_settop(L, 0);
    asyncio_copy_read(L, w->initout.p, w->initout.n);
    lua_settop(L, 1);
    return lua_error(L);
  }
  return 0;
}


/* Under the lock: every queued call fails with 'why'. */
static void fail_queued (Pool *p, const char *why) {
  Job *j;
  while ((j = p->head) != NULL) {
    p->head = j->next;
    p->queued--;
    fail_job(j, OUT_FAILED, why);
    push_done(p, j);
  }
  p->tail = NULL;
}


/* Under the lock: with no worker alive (every start failed) nobody will
** take the queued calls: they fail with the reason (NULL: the reason's own
** allocation failed, and the call says "not enough memory"). */
static void fail_orphaned (Pool *p) {
  if (p->alive == 0 && p->head != NULL) fail_queued(p, p->startfail);
}


/* Under the lock: init failed; nothing more runs, queued calls fail. */
static void break_pool (Pool *p, const char *msg) {
  if (p->broken == NULL) {
    size_t n = strlen(msg) + 40;
    p->broken = (char *)malloc(n);
    if (p->broken) snprintf(p->broken, n, "worker_pool: init failed: %s", msg);
  }
  fail_queued(p, p->broken);
  uv_cond_broadcast(&p->work);
}


/* Push the error message of a failed protected call. */
static const char *error_text (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  return msg ? msg : "error object is not a string";
}


static void worker_main (void *arg) {
  Worker *w = (Worker *)arg;
  Pool *p = w->pool;
  lua_State *L;
  const char *starterr = NULL, *initerr = NULL;
  L = luaL_newstate();
  if (L == NULL) starterr = "not enough memory for a Lua state";
  else {
    lua_pushcfunction(L, open_state);
    lua_pushlightuserdata(L, p);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) starterr = error_text(L);
    else {
      lua_pushcfunction(L, run_init);
      lua_pushlightuserdata(L, w);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) initerr = error_text(L);
    }
    asyncio_copy_free(&w->initout);
  }
  uv_mutex_lock(&p->mu);
  if (initerr != NULL) break_pool(p, initerr);
  if (starterr != NULL) {  /* this worker cannot run: the others (or a later one) will */
    size_t n = strlen(starterr) + 50;
    free(p->startfail);
    p->startfail = (char *)malloc(n);
    if (p->startfail) snprintf(p->startfail, n, "worker_pool: cannot start a worker: %s", starterr);
  }
  while (starterr == NULL) {
    Job *j;
    while (p->head == NULL && !p->closing && p->broken == NULL) {
      p->idle++;
      uv_cond_wait(&p->work, &p->mu);
      p->idle--;
    }
    if (p->head == NULL || p->broken != NULL) break;
    j = p->head;
    p->head = j->next;
    if (p->head == NULL) p->tail = NULL;
    p->queued--;
    if (j->cancelled) { fail_job(j, OUT_CANCELLED, NULL); push_done(p, j); continue; }
    w->job = j;
    p->running++;
    uv_mutex_unlock(&p->mu);
    run_job(L, j);
    uv_mutex_lock(&p->mu);
    p->running--;
    w->job = NULL;
    push_done(p, j);
  }
  uv_mutex_unlock(&p->mu);
  if (L != NULL) lua_close(L);
  uv_mutex_lock(&p->mu);
  w->exited = 1;
  p->alive--;
  uv_cond_broadcast(&p->gone);
  if (p->alive == 0 && p->async_open) uv_async_send(&p->async);
  uv_mutex_unlock(&p->mu);
  unref_pool(p);
}


/* Keep this module loaded for the life of the process: a worker left
** running at the loop's close (see shutdown_pool) may come back after the
** host's lua_close, which unloads the module its code is in. Only then:
** every other worker is joined before the module can be unloaded (the
** loop's finalizer runs before Lua's finalizer of its C libraries). */
static void pin_module (void) {
  static int pinned = 0;
  Dl_info info;
  if (pinned) return;
  pinned = 1;
  if (dladdr(&pinned, &info) && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);  /* a reference never dropped */
}


/* Under the lock: start one more worker, in a free slot. Returns 0, a
** libuv error, or NOSLOT: every slot's thread has exited but is not yet
** joined (join_exited, which must not hold the lock, frees them). The thread starts with every signal blocked: signals are
** the loop's (a Ctrl-C must reach the thread that runs the loop). */
#define NOSLOT 1
static int start_worker (Pool *p) {
  Worker *w = NULL;
  sigset_t all, old;
  int i, r;
  for (i = 0; i < p->size && w == NULL; i++)
    if (!p->workers[i].started) w = &p->workers[i];
  if (w == NULL) return NOSLOT;
  memset(w, 0, sizeof *w);
  w->pool = p;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  r = uv_thread_create(&w->tid, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r != 0) return r;
  w->started = 1;
  p->alive++;
  p->refs++;
  return 0;
}


/* The loop side ------------------------------------------------------------- */

static void on_pool_closed (uv_handle_t *h) {
  Pool *p = (Pool *)h->data;
  Pool **pp;
  if (p->box != NULL) p->box->p = NULL;
  for (pp = &p->lp->pools; *pp != NULL; pp = &(*pp)->next)
    if (*pp == p) { *pp = p->next; break; }
  unref_pool(p);
}


/* Join the workers that have exited (they are about to, or have, left
** worker_main: the join is short); their slots are free again. */
static void join_exited (Pool *p) {
  int i;
  for (i = 0; i < p->size; i++) {
    Worker *w = &p->workers[i];
    int exited;
    uv_mutex_lock(&p->mu);
    exited = w->exited;
    uv_mutex_unlock(&p->mu);
    if (w->started && exited && !w->detached) {
      uv_thread_join(&w->tid);
      uv_mutex_lock(&p->mu);
      w->started = w->exited = 0;
      uv_mutex_unlock(&p->mu);
    }
  }
}


/* Hand Job 'j' back to its box, or free it if the box is gone. */
static void deliver (Pool *p, Job *j) {
  CallBox *b = j->box;
  if (--p->inflight == 0) uv_unref((uv_handle_t *)&p->async);
  j->pool = NULL;
  if (b == NULL) { free_job(j); return; }
  b->delivered = 1;
  asyncio_io_wake(p->lp, &b->waiter);
}


static void on_async (uv_async_t *a) {
  Pool *p = (Pool *)a->data;
  Job *j;
  int finished;
  uv_mutex_lock(&p->mu);
  fail_orphaned(p);
  j = p->done;
  p->done = p->donetail = NULL;
  finished = p->closing && p->alive == 0 && p->async_open;
  if (finished) p->async_open = 0;
  uv_mutex_unlock(&p->mu);
  join_exited(p);
  while (j != NULL) {
    Job *next = j->next;
    deliver(p, j);
    j = next;
  }
  if (finished)  /* closed and every worker gone: the pool's end */
    uv_close((uv_handle_t *)&p->async, on_pool_closed);
}


/* Close 'p' from the loop's side: no more calls; the workers leave once
** the queue is empty, and the last one's exit ends the pool (on_async).
** One that never started a thread ends here. */
static void close_pool (Pool *p) {
  int none;
  uv_mutex_lock(&p->mu);
  if (p->closing) { uv_mutex_unlock(&p->mu); return; }
  p->closing = 1;
  uv_cond_broadcast(&p->work);
  fail_orphaned(p);  /* (freed with the pool, they would leave their calls dangling) */
  none = p->alive == 0 && p->done == NULL;
  if (none) p->async_open = 0;
  uv_mutex_unlock(&p->mu);
  if (none) {
    join_exited(p);
    uv_close((uv_handle_t *)&p->async, on_pool_closed);
  }
}


/* A box whose Job will not come back: the loop is closing. */
static void orphan (Job *j) {
  if (j->box != NULL) {
    j->box->job = NULL;
    j->box->delivered = 1;
    j->box->waiter = NULL;
    j->box = NULL;
  }
}


/* A Ctrl-C is seen this soon while a close waits. */
#define CLOSE_SLICE_NS 100000000u


/*
** The loop is closing (close_loop, before its handles are closed): queued
** calls are dropped, and the workers have until 'join_timeout' seconds
** after 'start' (one moment for all the loop's pools) to finish the call
** they run and exit. One still running then is reported on stderr and
** left behind (detached): its Lua state and the pool live on until it
** comes back, and it then exits on its own.
*/
static void shutdown_pool (Pool *p, uint64_t start, int catching) {
  Job *j;
  int i, stuck = 0, interrupted = 0;
  uint64_t deadline = start + (uint64_t)(p->join_timeout * 1e9);
  uv_mutex_lock(&p->mu);
  p->closing = 1;
  while ((j = p->head) != NULL) {
    p->head = j->next;
    orphan(j);
    free_job(j);
  }
  p->tail = NULL;
  p->queued = 0;
  uv_cond_broadcast(&p->work);
  while (p->alive > 0) {
    uint64_t now = uv_hrtime();
    if (catching && asyncio_sigint_close_interrupted()) { interrupted = 1; break; }
    if (now >= deadline) break;
    uv_cond_timedwait(&p->gone, &p->mu,
                      deadline - now < CLOSE_SLICE_NS ? deadline - now : CLOSE_SLICE_NS);
  }
  for (i = 0; i < p->size; i++) {
    Worker *w = &p->workers[i];
    if (w->job != NULL) orphan(w->job);
    if (w->started && !w->exited) { w->detached = 1; stuck++; }
  }
  while ((j = p->done) != NULL) {
    p->done = j->next;
    orphan(j);
    free_job(j);
  }
  p->donetail = NULL;
  p->async_open = 0;
  uv_mutex_unlock(&p->mu);
  join_exited(p);
  if (stuck > 0) {
    if (interrupted)
      fprintf(stderr, "asyncio: worker_pool: %d worker thread%s still running a call (or init) "
              "when Ctrl-C ended the loop's close; left running\n", stuck, stuck == 1 ? "" : "s");
    else
      fprintf(stderr, "asyncio: worker_pool: %d worker thread%s still running a call (or init) "
              "%g s after the loop closed; left running\n", stuck, stuck == 1 ? "" : "s",
              p->join_timeout);
    pin_module();
    for (i = 0; i < p->size; i++)
      if (p->workers[i].detached) pthread_detach((pthread_t)p->workers[i].tid);
  }
  p->inflight = 0;
}


void asyncio_pools_shutdown (Loop *lp) {
  Pool *p;
  uint64_t start = uv_hrtime();
  /* a Ctrl-C meanwhile ends the waits (see interrupt.c) */
  int catching = lp->pools != NULL && asyncio_sigint_close_begin();
  for (p = lp->pools; p != NULL; p = p->next) shutdown_pool(p, start, catching);
  if (catching) asyncio_sigint_close_end();
}


/* Lua functions ------------------------------------------------------------- */

/*
** core.pool_new(loop, size, init|nil, join_timeout, path, cpath) -> pool
** | nil, err, msg. 'init' is a call (core.worker_call) each worker makes
** once, first. No thread starts until a call needs one; each worker's
** 'require' looks where the loop's did when the pool was made.
*/
static int pool_new (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int size = asyncio_checkrange(L, 2, 1, 1024);
  CallBox *initcall = lua_isnil(L, 3) ? NULL : (CallBox *)luaL_checkudata(L, 3, ASYNCIO_CALL);
  const Job *ij = initcall ? initcall->job : NULL;
  double join_timeout = luaL_checknumber(L, 4);
  const char *path = luaL_checkstring(L, 5), *cpath = luaL_checkstring(L, 6);
  PoolBox *box;
  Pool *p;
  int r;
  luaL_argcheck(L, join_timeout >= 0 && join_timeout <= 1e6, 4, "out of range");
  if (lp->closed) return asyncio_error(L, "the event loop is closed");
  box = (PoolBox *)lua_newuserdatauv(L, sizeof *box, 0);
  box->p = NULL;
  luaL_setmetatable(L, ASYNCIO_POOL);
  p = (Pool *)calloc(1, sizeof *p);
  if (p == NULL) return asyncio_nomem(L);
  p->workers = (Worker *)calloc((size_t)size, sizeof *p->workers);
  luaL_argcheck(L, initcall == NULL || (ij != NULL && !initcall->submitted), 3, "spent call");
  p->init = ij ? (char *)malloc(ij->ncode) : NULL;
  p->initargs.p = ij ? (char *)malloc(ij->in.n) : NULL;
  p->path = strdup(path);
  p->cpath = strdup(cpath);
  if (p->workers == NULL || (ij && (p->init == NULL || p->initargs.p == NULL)) ||
      p->path == NULL || p->cpath == NULL) {
    free(p->workers); free(p->init); free(p->initargs.p); free(p->path); free(p->cpath); free(p);
    return asyncio_nomem(L);
  }
  if (ij) {
    memcpy(p->init, ij->code, ij->ncode);
    p->ninit = ij->ncode;
    memcpy(p->initargs.p, ij->in.p, ij->in.n);
    p->initargs.n = p->initargs.cap = ij->in.n;
  }
  p->size = size;
  p->join_timeout = join_timeout;
  p->lp = lp;
  if ((r = uv_mutex_init(&p->mu)) != 0) goto fail;
  if ((r = uv_cond_init(&p->work)) != 0) { uv_mutex_destroy(&p->mu); goto fail; }
  if ((r = uv_cond_init(&p->gone)) != 0) {
    uv_mutex_destroy(&p->mu); uv_cond_destroy(&p->work); goto fail;
  }
  if ((r = uv_async_init(&lp->uv, &p->async, on_async)) != 0) {
    uv_mutex_destroy(&p->mu); uv_cond_destroy(&p->work); uv_cond_destroy(&p->gone); goto fail;
  }
  uv_unref((uv_handle_t *)&p->async);  /* referenced while calls are out */
  p->closer = on_pool_closed;
  p->async.data = p;
  p->async_open = 1;
  p->refs = 1;
  p->next = lp->pools;
  lp->pools = p;
  box->p = p;
  p->box = box;
  return 1;
fail:
  free(p->workers); free(p->init); free(p->initargs.p); free(p->path); free(p->cpath); free(p);
  return asyncio_pushuverror(L, r);
}


static Pool *checkpool (lua_State *L) {
  PoolBox *b = (PoolBox *)luaL_checkudata(L, 1, ASYNCIO_POOL);
  return b->p;
}


/* pool:_close(): no more calls (see close_pool). The userdata still sees
** the pool (pool:info() counts the calls it still runs) until the pool's
** end lets go of it (on_pool_closed). */
static int pool_close (lua_State *L) {
  PoolBox *b = (PoolBox *)luaL_checkudata(L, 1, ASYNCIO_POOL);
  if (b->p != NULL) close_pool(b->p);
  return 0;
}


/* pool:_info() -> threads started, idle, queued + running (or nil: closed) */
static int pool_info (lua_State *L) {
  Pool *p = checkpool(L);
  if (p == NULL) return 0;
  uv_mutex_lock(&p->mu);
  lua_pushinteger(L, p->alive);    /* (a thread starting is neither idle nor running) */
  lua_pushinteger(L, p->idle);
  lua_pushinteger(L, p->queued);
  lua_pushinteger(L, p->running);
  uv_mutex_unlock(&p->mu);
  return 4;
}


/*
** core.worker_call(fname, fnarg, bytecode, ...) -> call: a call not yet
** given to any pool, its arguments copied now (a value that cannot be
** copied is refused at the program's line, as a bad argument of 'fname':
** the function was its argument 'fnarg', the values follow it; a negative
** 'fnarg' says the values are the list in option 'initargs' of argument
** -fnarg).
*/
static int worker_call (lua_State *L) {
  const char *fname = luaL_checkstring(L, 1);
  int fnarg = (int)luaL_checkinteger(L, 2);
  size_t ncode;
  const char *code = luaL_checklstring(L, 3, &ncode);
  int nargs = lua_gettop(L) - 3, pos;
  char why[ASYNCIO_WHYLEN];
  CallBox *b = (CallBox *)lua_newuserdatauv(L, sizeof *b, 2);
  Job *j;
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_CALL);
  j = (Job *)calloc(1, sizeof *j);
  if (j == NULL) return asyncio_nomem(L);
  b->job = j;
  j->box = b;
  if ((j->code = (char *)malloc(ncode)) == NULL) return asyncio_nomem(L);
  memcpy(j->code, code, ncode);
  j->ncode = ncode;
  pos = asyncio_copy_write(L, 4, nargs, &j->in, why);
  if (pos != 0 && fnarg < 0)
    return asyncio_error(L, "bad argument #%d to '%s' (initargs[%d] is %s, which cannot be "
                         "copied to a worker thread)", -fnarg, fname, pos, why);
  if (pos != 0)
    return asyncio_error(L, "bad argument #%d to '%s' (%s cannot be copied to a worker thread)",
                         pos + fnarg, fname, why);
  return 1;
}


static CallBox *checkcall (lua_State *L, int idx) {
  return (CallBox *)luaL_checkudata(L, idx, ASYNCIO_CALL);
}


/*
** pool:_submit(call) -> true | nil, "closed" | nil, "broken", msg |
** nil, err, msg: queue the call, starting a worker if none is idle and the
** pool has room for one.
*/
static int pool_submit (lua_State *L) {
  Pool *p = checkpool(L);
  CallBox *b = checkcall(L, 2);
  Job *j = b->job;
  int r = 0;
  if (j == NULL || b->submitted) {  /* awaited again */
    lua_pushnil(L);
    lua_pushliteral(L, "submitted");
    return 2;
  }
  if (p == NULL) { lua_pushnil(L); lua_pushliteral(L, "closed"); return 2; }
  uv_mutex_lock(&p->mu);
  if (p->broken != NULL || p->closing) {
    uv_mutex_unlock(&p->mu);
    lua_pushnil(L);
    if (p->broken == NULL) { lua_pushliteral(L, "closed"); return 2; }
    lua_pushliteral(L, "broken");
    lua_pushstring(L, p->broken);
    return 3;
  }
  /* a thread more if the queue, with this call, outnumbers the idle ones */
  if (p->queued + 1 > p->idle && p->alive < p->size) {
    r = start_worker(p);
    if (r == NOSLOT) {
      uv_mutex_unlock(&p->mu);
      join_exited(p);
      uv_mutex_lock(&p->mu);
      r = start_worker(p);
      if (r == NOSLOT) r = UV_EAGAIN;  /* (cannot be: alive < size) */
    }
    if (r != 0 && p->alive > 0) r = 0;  /* the running ones will take it */
  }
  if (r == 0) {
    b->submitted = 1;
    j->pool = p;
    j->next = NULL;
    if (p->tail) p->tail->next = j; else p->head = j;
    p->tail = j;
    p->queued++;
    uv_cond_signal(&p->work);
  }
  uv_mutex_unlock(&p->mu);
  if (r != 0) return asyncio_pushuverror(L, r);
  if (p->inflight++ == 0) uv_ref((uv_handle_t *)&p->async);
  lua_pushvalue(L, 1);  /* the pool lives while its calls do */
  lua_setiuservalue(L, 2, 1);
  lua_pushboolean(L, 1);
  return 1;
}


/* call:_wait(loop): suspend until the call is back (or cancelled). */
static int call_wait (lua_State *L) {
  CallBox *b = checkcall(L, 1);
  Loop *lp = asyncio_checkloop(L, 2);
  lua_settop(L, 2);
  return asyncio_io_wait(L, lp, 1, 2, &b->waiter, 2);  /* user value 1: the pool */
}


/* call:_abort(): the waiter is gone (cancelled): the call, if it has not
** started, never will. */
static int call_abort (lua_State *L) {
  CallBox *b = checkcall(L, 1);
  Job *j = b->job;
  b->waiter = NULL;
  if (j != NULL && !b->delivered && j->pool != NULL) {
    uv_mutex_lock(&j->pool->mu);
    j->cancelled = 1;
    uv_mutex_unlock(&j->pool->mu);
  }
  return 0;
}


/*
** call:_result() -> false (not back yet) | "ok", results... |
** "error", message, traceback, value | "failed", message |
** "cancelled" | "closed" (the loop closed under it)
*/
static int call_result (lua_State *L) {
  CallBox *b = checkcall(L, 1);
  Job *j = b->job;
  if (j == NULL) { lua_pushliteral(L, "closed"); return 1; }
  if (!b->delivered) { lua_pushboolean(L, 0); return 1; }
  switch (j->outcome) {
    case OUT_OK: lua_pushliteral(L, "ok"); break;
    case OUT_ERROR: lua_pushliteral(L, "error"); break;
    case OUT_CANCELLED: lua_pushliteral(L, "cancelled"); return 1;
    default:
      lua_pushliteral(L, "failed");
      if (j->failure) lua_pushstring(L, j->failure); else lua_pushliteral(L, "not enough memory");
      return 2;
  }
  luaL_checkstack(L, 8, NULL);
  return 1 + asyncio_copy_read(L, j->out.p, j->out.n);
}


static int call_gc (lua_State *L) {
  CallBox *b = checkcall(L, 1);  /* __gc is a field Lua code can reach: check */
  Job *j = b->job;
  b->job = NULL;
  if (j == NULL) return 0;
  if (b->delivered || !b->submitted) { free_job(j); return 0; }
  /* still out: its pool frees it when it comes back */
  j->box = NULL;
  uv_mutex_lock(&j->pool->mu);
  j->cancelled = 1;
  uv_mutex_unlock(&j->pool->mu);
  return 0;
}


/* The userdata goes: the pool no longer reaches it, and closes. */
static int pool_gc (lua_State *L) {
  PoolBox *b = (PoolBox *)luaL_checkudata(L, 1, ASYNCIO_POOL);
  if (b->p != NULL) b->p->box = NULL;
  pool_close(L);
  b->p = NULL;
  return 0;
}


/* core.cpu_count(): the CPUs this process may use. */
static int cpu_count (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}


void asyncio_worker_open (lua_State *L) {
  static const luaL_Reg pool_meta[] = {
    {"__gc", pool_gc}, {"_close", pool_close}, {"_submit", pool_submit}, {"_info", pool_info},
    {NULL, NULL}
  };
  static const luaL_Reg call_meta[] = {
    {"__gc", call_gc}, {"_wait", call_wait}, {"_abort", call_abort}, {"_result", call_result},
    {NULL, NULL}
  };
  static const luaL_Reg module[] = {
    {"pool_new", pool_new}, {"worker_call", worker_call}, {"cpu_count", cpu_count},
    {NULL, NULL}
  };
  luaL_newmetatable(L, ASYNCIO_POOL);
  asyncio_setfuncs(L, pool_meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, ASYNCIO_CALL);
  asyncio_setfuncs(L, call_meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
