/*
** process.c: child processes (uv_spawn). A Process userdata holds what Lua
** reads (pid, exit status, the waiting task); the uv_process_t lives in
** malloc'd memory of its own, closed by the exit callback (which is what
** reaps the child) or by the loop. A Process collected before its child
** exits only cuts the handle loose: libuv still reaps the child.
** Its pipes are stream.c's streams; what wait and communicate mean is
** subprocess.lua's affair.
*/
/* dladdr and RTLD_NODELETE are GNU */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncio.h"

typedef struct PBox PBox;

typedef struct Proc {
  asyncio_closer closer;       /* first: the loop closes leftovers with it */
  uv_process_t h;
  PBox *box;                   /* NULL once the userdata is collected */
  int exited;                  /* on_child_exit has reaped the child */
} Proc;

struct PBox {
  Proc *p;                     /* NULL once the handle is closed */
  Loop *lp;
  lua_State *waiter;
  int pid;
  int exited;
  int64_t status;
  int signal;
};

/* stdio kinds, as subprocess.lua passes them */
enum { IO_INHERIT, IO_PIPE, IO_DEVNULL, IO_STDOUT };


static void *reap (void *arg) {
  int status;
  while (waitpid((pid_t)(intptr_t)arg, &status, 0) < 0 && errno == EINTR) {}
  return NULL;
}


/*
** The loop closed while the child still runs: nobody will wait for it
** on that loop, and a child nobody waits for stays a zombie once it
** exits. A small detached thread waits for it instead (waitpid of this
** pid only: libuv's own reaping of other children is not disturbed).
*/
/*
** The reaper's code is in this module: Lua unloads it when its state
** closes, while a reaper may still wait. Once one is started the module
** stays loaded for the life of the process (dlopen with RTLD_NODELETE).
*/
static void pin_module (void) {
  static int pinned = 0;
  Dl_info info;
  if (!pinned && dladdr(&pinned, &info) != 0 && info.dli_fname != NULL &&
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE) != NULL)
    pinned = 1;
}


static void reap_later (int pid) {
  pthread_t th;
  pthread_attr_t a;
  sigset_t all, old;
  pin_module();
  if (pthread_attr_init(&a) != 0) return;
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 64 * 1024);
  sigfillset(&all);  /* the thread inherits this mask: signals stay the loop thread's */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&th, &a, reap, (void *)(intptr_t)pid) != 0)
    waitpid(pid, NULL, WNOHANG);  /* no thread: at least a child that is done */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&a);
}


static void on_close (uv_handle_t *h) {
  Proc *p = (Proc *)h->data;
  if (!p->exited && p->h.pid > 0) reap_later(p->h.pid);
  if (p->box != NULL) p->box->p = NULL;
  free(p);
}


static void on_child_exit (uv_process_t *h, int64_t status, int signal) {
  Proc *p = (Proc *)h->data;
  PBox *b = p->box;
  p->exited = 1;
  if (b != NULL) {
    b->exited = 1;
    b->status = status;
    b->signal = signal;
    asyncio_io_wake(b->lp, &b->waiter);
  }
  uv_close((uv_handle_t *)h, on_close);
}


/* The strings of the list at 'idx' as a NULL-ended array (in 'L's memory:
** a userdata left on the stack), or NULL if the value is nil. */
static char **strings (lua_State *L, int idx, const char *what) {
  lua_Integer i, n;
  char **v;
  if (lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, idx);
  v = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TSTRING) asyncio_error(L, "%s must be strings", what);
    v[i - 1] = (char *)lua_tostring(L, -1);  /* kept alive by the list itself */
    if (strlen(v[i - 1]) != lua_rawlen(L, -1)) asyncio_error(L, "%s have an embedded null byte", what);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return v;
}


/*
** core.spawn(loop, file, args, env|nil, cwd|nil, {in, out, err}, limit, new_session)
**   -> process, stdin|false, stdout|false, stderr|false | nil, err, msg
** args is the full argv (args[1] the program's name); a kind per stdio
** stream (IO_INHERIT...); a pipe comes back as a stream.
*/
/*
** CPython's close_fds: a child inherits its stdin, stdout and stderr only.
** libuv execs with every descriptor of the process that lacks FD_CLOEXEC
** (a file the host opened with io.open, the pipe a cluster worker watches):
** set it on them. The parent's own use of them is unchanged; only an exec
** drops them (the stdio given to the child is dup2'd, which clears it).
*/
static void cloexec_all (void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int self;
  if (d == NULL) return;
  self = dirfd(d);
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name), fl;
    if (fd > 2 && fd != self && (fl = fcntl(fd, F_GETFD)) >= 0 && !(fl & FD_CLOEXEC))
      fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
  closedir(d);
}


static int core_spawn (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *file = asyncio_checkname(L, 2);
  char **args, **env;
  const char *cwd = asyncio_optname(L, 5, NULL);
  lua_Integer limit = luaL_optinteger(L, 7, 65536);
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  int kinds[3], pipes[3] = {0, 0, 0}, devnull = -1, shared[2] = {-1, -1}, i, r, pidx;
  PBox *b;
  Proc *p;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  luaL_argcheck(L, limit > 0, 7, "limit must be positive");
  int new_session = lua_toboolean(L, 8);
  lua_settop(L, 7);
  args = strings(L, 3, "arguments");      /* index 8 */
  env = strings(L, 4, "environment entries");  /* index 9, if any */
  for (i = 0; i < 3; i++) {
    lua_rawgeti(L, 6, i + 1);
    kinds[i] = asyncio_optrange(L, -1, IO_INHERIT, IO_INHERIT, IO_STDOUT);
    lua_pop(L, 1);
  }
  memset(&o, 0, sizeof o);
  memset(io, 0, sizeof io);
  b = (PBox *)lua_newuserdatauv(L, sizeof *b, 2);
  pidx = lua_gettop(L);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_PROCESS);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  b->lp = lp;
  for (i = 0; i < 3; i++) {
    if (i == 1 && kinds[1] == IO_PIPE && kinds[2] == IO_STDOUT) {
      /* stdout and stderr into one pipe: libuv makes a pipe per stream,
      ** so make this one here and give the child its write end twice */
      uv_stream_t *s = asyncio_pipe_new(L, lp, 1, (size_t)limit, &r);
      if (s == NULL) goto fail;
      pipes[1] = lua_gettop(L);
      if ((r = uv_pipe(shared, UV_NONBLOCK_PIPE, 0)) < 0) goto fail;
      if ((r = asyncio_pipe_open(L, pipes[1], shared[0])) < 0) goto fail;
      shared[0] = -1;  /* the stream owns it now */
      io[1].flags = UV_INHERIT_FD;
      io[1].data.fd = shared[1];
    }
    else if (kinds[i] == IO_PIPE) {
      uv_stream_t *s = asyncio_pipe_new(L, lp, 1, (size_t)limit, &r);
      if (s == NULL) goto fail;
      pipes[i] = lua_gettop(L);
      io[i].flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                                     (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      io[i].data.stream = s;
    }
    else if (kinds[i] == IO_DEVNULL) {
      if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        r = UV_EMFILE;
        goto fail;
      }
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = devnull;
    }
    else if (kinds[i] == IO_STDOUT && i == 2) {
      io[2] = io[1];  /* the shared pipe's write end, /dev/null, or: */
      if (kinds[1] == IO_INHERIT) { io[2].flags = UV_INHERIT_FD; io[2].data.fd = 1; }
    }
    else {
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = i;
    }
  }
  p = (Proc *)malloc(sizeof *p);
  if (p == NULL) { r = UV_ENOMEM; goto fail; }
  memset(p, 0, sizeof *p);
  p->closer = on_close;
  o.exit_cb = on_child_exit;
  o.file = file;
  o.args = args;
  o.env = env;
  o.cwd = cwd;
  o.stdio = io;
  o.stdio_count = 3;
  if (new_session) o.flags |= UV_PROCESS_DETACHED;  /* setsid(): a session and group of its own */
  cloexec_all();
  r = uv_spawn(&lp->uv, &p->h, &o);
  if (devnull >= 0) close(devnull);
  if (shared[1] >= 0) close(shared[1]);
  devnull = shared[1] = -1;
  if (r < 0) {
    /* libuv has already set up the handle: it is closed like any other */
    p->h.data = p;
    p->exited = 1;  /* no child to reap: libuv did if there was one */
    uv_close((uv_handle_t *)&p->h, on_close);
    goto fail;
  }
  p->h.data = p;
  p->box = b;
  b->p = p;
  b->pid = p->h.pid;
  lua_pushvalue(L, pidx);
  for (i = 0; i < 3; i++) {
    if (pipes[i]) {
      asyncio_pipe_start(L, pipes[i], i > 0);
      lua_pushvalue(L, pipes[i]);
    }
    else lua_pushboolean(L, 0);
  }
  return 4;
fail:
  if (devnull >= 0) close(devnull);
  if (shared[0] >= 0) close(shared[0]);
  if (shared[1] >= 0) close(shared[1]);
  for (i = 0; i < 3; i++)
    if (pipes[i]) asyncio_pipe_abandon(L, pipes[i], 1);
  return asyncio_pushuverror(L, r);
}


static PBox *checkproc (lua_State *L) {
  return (PBox *)luaL_checkudata(L, 1, ASYNCIO_PROCESS);
}


/* p:_wait(loop): suspend until the child exits (or a cancellation). */
static int proc_wait (lua_State *L) {
  PBox *b = checkproc(L);
  return asyncio_io_wait_method(L, &b->waiter, b->lp);
}


static int proc_abort (lua_State *L) {
  checkproc(L)->waiter = NULL;
  return 0;
}


/* p:_status() -> pid, exited, exit status, terminating signal */
static int proc_status (lua_State *L) {
  PBox *b = checkproc(L);
  lua_pushinteger(L, b->pid);
  lua_pushboolean(L, b->exited);
  lua_pushinteger(L, (lua_Integer)b->status);
  lua_pushinteger(L, b->signal);
  return 4;
}


/* p:_kill(signum, [group]) -> true | nil, err, msg (ESRCH once it has
** exited). 'group': the whole process group the child leads (a child
** started in a new session), grandchildren included. */
static int proc_kill (lua_State *L) {
  PBox *b = checkproc(L);
  int sig = asyncio_checkrange(L, 2, 0, 64), r;
  if (lua_toboolean(L, 3)) r = b->pid > 0 ? uv_kill(-b->pid, sig) : UV_ESRCH;
  else if (b->exited || b->p == NULL) r = UV_ESRCH;
  else r = uv_process_kill(&b->p->h, sig);
  if (r < 0) return asyncio_pushuverror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}


/* Collected before its child exited: the handle stays (libuv reaps the
** child through it) and closes itself in on_child_exit. */
static int proc_gc (lua_State *L) {
  PBox *b = checkproc(L);  /* __gc is a field Lua code can reach: check */
  if (b->p != NULL) b->p->box = NULL;
  b->p = NULL;
  return 0;
}


void asyncio_process_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", proc_gc}, {"_wait", proc_wait}, {"_abort", proc_abort},
    {"_status", proc_status}, {"_kill", proc_kill}, {NULL, NULL}
  };
  static const luaL_Reg module[] = {{"spawn", core_spawn}, {NULL, NULL}};
  luaL_newmetatable(L, ASYNCIO_PROCESS);
  asyncio_setfuncs(L, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
