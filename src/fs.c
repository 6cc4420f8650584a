/*
** fs.c: file system requests on libuv's thread pool. Each request is a
** userdata (an FsBox) the Lua layer waits on; the uv_fs_t lives in
** malloc'd memory, because a collected box (or a cancelled task) cannot
** stop the thread pool: then the callback frees it. The answer is turned
** into Lua values only when Lua asks (_result), in a Lua context.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio.h"

#define ASYNCIO_FS "asyncio.FsRequest"

typedef struct FsBox FsBox;

typedef struct FsReq {
  uv_fs_t req;
  FsBox *box;                  /* NULL once the box is collected */
  size_t len;                  /* read: the buffer's size; write: the bytes' count */
  int64_t off;                 /* write: where the bytes go (-1: the end, O_APPEND) */
  uv_file closefd;             /* 1 + a descriptor to close once done (_then_close), or 0 */
  char *tail;                  /* _then_close: bytes to write after this write, or NULL */
  size_t ntail;
  int64_t tailoff;
  char data[];                 /* read: the buffer; write: a copy of the bytes */
} FsReq;

struct FsBox {
  FsReq *r;                    /* the request, until _result or collection */
  Loop *lp;
  lua_State *waiter;
  int done;
};

enum { OP_OPEN, OP_CLOSE, OP_READ, OP_WRITE, OP_STAT, OP_FSTAT, OP_MKDIR, OP_RMDIR,
       OP_UNLINK, OP_RENAME, OP_SCANDIR, OP_FTRUNCATE, OP_FSYNC };


/* Write 'n' bytes at 'p' to 'fd' now, at 'off' (-1: at the end), all of
** them (a short write goes on). 0, or the errno of the failure. */
static int write_all (int fd, const char *p, size_t n, int64_t off) {
  while (n > 0) {
    ssize_t k = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, (off_t)off);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += k;
    n -= (size_t)k;
    if (off >= 0) off += k;
  }
  return 0;
}


/*
** A file's last write ended in the pool and its File is gone (closed by
** a <close> variable that could not wait, or collected): the rest of a
** short write, then the bytes gathered after it, in that order (an append
** must not land before the write it follows), then the close. Nobody is
** left to raise an error to: it goes to stderr.
*/
static void then_close (FsReq *r) {
  int fd = r->closefd - 1, e = 0;
  if (r->req.fs_type == UV_FS_WRITE && r->req.result >= 0 && (size_t)r->req.result < r->len) {
    size_t done = (size_t)r->req.result;
    e = write_all(fd, r->data + done, r->len - done, r->off < 0 ? -1 : r->off + (int64_t)done);
  }
  if (e == 0 && r->tail != NULL) e = write_all(fd, r->tail, r->ntail, r->tailoff);
  if (e == 0 && r->req.fs_type == UV_FS_WRITE && r->req.result < 0) e = -(int)r->req.result;
  if (e != 0) {
    fprintf(stderr, "asyncio: a file closed without waiting lost a write: %s\n", strerror(e));
    fflush(stderr);
  }
  close(fd);
  free(r->tail);
  r->tail = NULL;
  r->closefd = 0;
}


/* A completed open whose descriptor nobody will take (its box collected,
** or its waiter cancelled): close it, or it leaks. */
static void close_unclaimed (FsReq *r) {
  if (r->req.fs_type == UV_FS_OPEN && r->req.result >= 0) {
    close((int)r->req.result);
    r->req.result = UV_ECANCELED;
  }
}


static void on_fs (uv_fs_t *req) {
  FsReq *r = (FsReq *)req;
  FsBox *b = r->box;
  if (r->closefd > 0) then_close(r);  /* here, not another trip to the pool */
  if (b == NULL) {
    close_unclaimed(r);
    uv_fs_req_cleanup(req);
    free(r);
    return;
  }
  b->done = 1;
  asyncio_io_wake(b->lp, &b->waiter);
}


/* A new box (pushed) with a request of 'extra' bytes of data. */
static FsReq *new_req (lua_State *L, Loop *lp, size_t extra) {
  FsBox *b = (FsBox *)lua_newuserdatauv(L, sizeof *b, 2);
  FsReq *r;
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_FS);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  b->lp = lp;
  if (extra > ((size_t)-1 >> 1) - sizeof *r) asyncio_error(L, "request too large");
  r = (FsReq *)malloc(sizeof *r + extra);
  if (r == NULL) { asyncio_nomem(L); return NULL; }
  memset(r, 0, sizeof *r);
  r->box = b;
  r->len = extra;
  b->r = r;
  return r;
}


static int started (lua_State *L, FsReq *r, int err) {
  if (err < 0) {
    r->box->r = NULL;
    free(r);
    return asyncio_pushuverror(L, err);
  }
  return 1;
}


/* A request holding a copy of the bytes at 'idx' (a string, or a list of
** strings joined); their count in '*n'. */
static FsReq *write_req (lua_State *L, Loop *lp, int idx, size_t *n) {
  FsReq *r;
  size_t i, len, k = 0;
  if (!lua_istable(L, idx)) {
    const char *p = luaL_checklstring(L, idx, n);
    r = new_req(L, lp, *n);
    memcpy(r->data, p, *n);
    return r;
  }
  len = lua_rawlen(L, idx);
  *n = 0;
  for (i = 1; i <= len; i++) {
    luaL_argcheck(L, lua_rawgeti(L, idx, (lua_Integer)i) == LUA_TSTRING, idx,
                  "list of strings expected");
    *n += lua_rawlen(L, -1);
    lua_pop(L, 1);
  }
  r = new_req(L, lp, *n);  /* pushed: the strings are read below it */
  for (i = 1; i <= len; i++) {
    size_t l;
    const char *p;
    lua_rawgeti(L, idx, (lua_Integer)i);
    p = lua_tolstring(L, -1, &l);
    memcpy(r->data + k, p, l);
    k += l;
    lua_pop(L, 1);
  }
  return r;
}


/* Open flags from a C-like mode string ("r", "w", "a", with "+"; "b" is
** ignored), as io.open takes them. */
static int mode_flags (const char *m, int *flags) {
  int plus = strchr(m, '+') != NULL;
  switch (m[0]) {
    case 'r': *flags = plus ? O_RDWR : O_RDONLY; break;
    case 'w': *flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    case 'a': *flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
    default: return 0;
  }
  *flags |= O_CLOEXEC;
  return strspn(m + 1, "+b") == strlen(m + 1);
}


/*
** core.fs(loop, op, ...) -> request | nil, err, msg
**   OP_OPEN path mode perm | OP_CLOSE fd | OP_READ fd n offset |
**   OP_WRITE fd data offset (data: a string or a list) | OP_STAT path | OP_FSTAT fd | OP_MKDIR path perm |
**   OP_RMDIR path | OP_UNLINK path | OP_RENAME from to | OP_SCANDIR path |
**   OP_FTRUNCATE fd size | OP_FSYNC fd
** Offsets below 0 mean the file's own position (O_APPEND writes).
*/
static int core_fs (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int op = asyncio_checkrange(L, 2, OP_OPEN, OP_FSYNC);
  uv_loop_t *uv = &lp->uv;
  FsReq *r;
  lua_settop(L, 6);  /* the request box goes above every argument */
  switch (op) {
    case OP_OPEN: {
      const char *path = asyncio_checkname(L, 3);
      int flags = 0;
      luaL_argcheck(L, mode_flags(luaL_checkstring(L, 4), &flags), 4, "invalid mode");
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_open(uv, &r->req, path, flags,
                                      asyncio_optrange(L, 5, 0666, 0, 07777), on_fs));
    }
    case OP_CLOSE:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_close(uv, &r->req, asyncio_checkfd(L, 3), on_fs));
    case OP_READ: {
      lua_Integer n = luaL_checkinteger(L, 4);
      uv_buf_t buf;
      luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 4, "count out of range");
      r = new_req(L, lp, (size_t)n);
      buf = asyncio_buf(r->data, (size_t)n);
      return started(L, r, uv_fs_read(uv, &r->req, asyncio_checkfd(L, 3), &buf, 1,
                                      (int64_t)luaL_checkinteger(L, 5), on_fs));
    }
    case OP_WRITE: {  /* data: a string, or a list of strings written as one */
      uv_buf_t buf;
      size_t n;
      r = write_req(L, lp, 4, &n);
      buf = asyncio_buf(r->data, n);
      r->off = (int64_t)luaL_checkinteger(L, 5);
      return started(L, r, uv_fs_write(uv, &r->req, asyncio_checkfd(L, 3), &buf, 1,
                                       r->off, on_fs));
    }
    case OP_STAT:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_stat(uv, &r->req, asyncio_checkname(L, 3), on_fs));
    case OP_FSTAT:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_fstat(uv, &r->req, asyncio_checkfd(L, 3), on_fs));
    case OP_MKDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_mkdir(uv, &r->req, asyncio_checkname(L, 3),
                                       asyncio_optrange(L, 4, 0777, 0, 07777), on_fs));
    case OP_RMDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_rmdir(uv, &r->req, asyncio_checkname(L, 3), on_fs));
    case OP_UNLINK:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_unlink(uv, &r->req, asyncio_checkname(L, 3), on_fs));
    case OP_RENAME:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_rename(uv, &r->req, asyncio_checkname(L, 3),
                                        asyncio_checkname(L, 4), on_fs));
    case OP_SCANDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_scandir(uv, &r->req, asyncio_checkname(L, 3), 0, on_fs));
    case OP_FTRUNCATE:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_ftruncate(uv, &r->req, asyncio_checkfd(L, 3),
                                           (int64_t)luaL_checkinteger(L, 4), on_fs));
    case OP_FSYNC:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_fsync(uv, &r->req, asyncio_checkfd(L, 3), on_fs));
    default:
      return luaL_argerror(L, 2, "unknown file system operation");
  }
}


/* core.guess_handle(fd) -> "tty", "pipe", "file", "tcp", "udp" or
** "unknown": what a descriptor is (the async REPL asks of stdin). */
static int core_guess_handle (lua_State *L) {
  switch (uv_guess_handle(asyncio_checkfd(L, 1))) {
    case UV_TTY: lua_pushliteral(L, "tty"); break;
    case UV_NAMED_PIPE: lua_pushliteral(L, "pipe"); break;
    case UV_FILE: lua_pushliteral(L, "file"); break;
    case UV_TCP: lua_pushliteral(L, "tcp"); break;
    case UV_UDP: lua_pushliteral(L, "udp"); break;
    default: lua_pushliteral(L, "unknown"); break;
  }
  return 1;
}


static FsBox *checkfs (lua_State *L) {
  return (FsBox *)luaL_checkudata(L, 1, ASYNCIO_FS);
}


/*
** req:_then_close(fd, [tail, offset]) -> true if the request is still in
** the pool: once it is done, the bytes 'tail' are written at 'offset' (-1:
** appended) and descriptor 'fd' closed, there (closing now could let the
** write land on a descriptor reused meanwhile, and an appended tail written
** now would land before it). False if it is done already: do it yourself.
*/
static int fs_then_close (lua_State *L) {
  FsBox *b = checkfs(L);
  int fd = asyncio_checkfd(L, 2);
  size_t n = 0;
  const char *tail = luaL_optlstring(L, 3, NULL, &n);
  lua_Integer off = luaL_optinteger(L, 4, -1);
  int pending = b->r != NULL && !b->done;
  if (pending) {
    FsReq *r = b->r;
    if (n > 0) {
      char *t = (char *)malloc(n);
      if (t == NULL) return asyncio_nomem(L);
      memcpy(t, tail, n);
      free(r->tail);
      r->tail = t;
      r->ntail = n;
      r->tailoff = (int64_t)off;
    }
    r->closefd = fd + 1;
  }
  lua_pushboolean(L, pending);
  return 1;
}


/*
** core.fs_now(op, fd, ...): OP_WRITE fd data offset -> true, or OP_CLOSE
** fd -> true; or nil, err, msg. Done at once on this thread, with no loop:
** for a File closed where nothing can wait (a <close> variable outside its
** task, a finalizer). A write writes everything (short writes go on).
*/
static int core_fs_now (lua_State *L) {
  int op = asyncio_checkrange(L, 1, OP_OPEN, OP_FSYNC);
  int fd = asyncio_checkfd(L, 2);
  int e = 0;
  if (op == OP_WRITE) {
    size_t n;
    const char *p = luaL_checklstring(L, 3, &n);
    e = write_all(fd, p, n, (int64_t)luaL_checkinteger(L, 4));
  }
  else if (op == OP_CLOSE) {
    if (close(fd) < 0 && errno != EINTR) e = errno;
  }
  else return luaL_argerror(L, 1, "OP_WRITE or OP_CLOSE expected");
  if (e != 0) return asyncio_pushuverror(L, uv_translate_sys_error(e));
  lua_pushboolean(L, 1);
  return 1;
}


static int fs_wait (lua_State *L) {
  FsBox *b = checkfs(L);
  return asyncio_io_wait_method(L, &b->waiter, b->lp);
}


static int fs_abort (lua_State *L) {
  checkfs(L)->waiter = NULL;
  return 0;
}


static const char *type_name (uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}


static void push_stat (lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 11);
  lua_pushinteger(L, (lua_Integer)s->st_size); lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(s->st_mode & 07777)); lua_setfield(L, -2, "mode");
  lua_pushstring(L, type_name(s->st_mode)); lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)s->st_nlink); lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)s->st_uid); lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)s->st_gid); lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)s->st_ino); lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)s->st_dev); lua_setfield(L, -2, "dev");
  lua_pushnumber(L, (lua_Number)s->st_mtim.tv_sec + (lua_Number)s->st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, (lua_Number)s->st_atim.tv_sec + (lua_Number)s->st_atim.tv_nsec / 1e9);
  lua_setfield(L, -2, "atime");
  lua_pushnumber(L, (lua_Number)s->st_ctim.tv_sec + (lua_Number)s->st_ctim.tv_nsec / 1e9);
  lua_setfield(L, -2, "ctime");
}


static const char *dirent_type (uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "directory";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}


/*
** req:_result() -> false (not yet) | nil, err, msg | the answer: open: fd;
** read: the bytes; write: the count; stat/fstat: a table; scandir: a list
** of {name, type}; the rest: true. The request is released.
*/
static int fs_result (lua_State *L) {
  FsBox *b = checkfs(L);
  FsReq *r = b->r;
  int n = 1;
  if (r == NULL) return asyncio_error(L, "file system request already consumed");
  if (!b->done) { lua_pushboolean(L, 0); return 1; }
  if (r->req.result < 0) n = asyncio_pushuverror(L, (int)r->req.result);
  else switch (r->req.fs_type) {
    case UV_FS_OPEN: lua_pushinteger(L, (lua_Integer)r->req.result); break;
    case UV_FS_READ: lua_pushlstring(L, r->data, (size_t)r->req.result); break;
    case UV_FS_WRITE: lua_pushinteger(L, (lua_Integer)r->req.result); break;
    case UV_FS_STAT: case UV_FS_FSTAT: push_stat(L, &r->req.statbuf); break;
    case UV_FS_SCANDIR: {
      uv_dirent_t ent;
      lua_Integer i = 0;
      lua_newtable(L);
      while (uv_fs_scandir_next(&r->req, &ent) != UV_EOF) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, ent.name); lua_setfield(L, -2, "name");
        lua_pushstring(L, dirent_type(ent.type)); lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, ++i);
      }
      break;
    }
    default: lua_pushboolean(L, 1);
  }
  b->r = NULL;
  uv_fs_req_cleanup(&r->req);
  free(r);
  return n;
}


/*
** A request nobody will read. One that is done is freed (an open's
** descriptor closed). One still in the pool is freed by on_fs; it is
** cancelled if it has no effect to lose (a read, a stat, a listing, an
** open: one that is not cancelled in time has its descriptor closed). A
** write is never cancelled: its File told the program it was written.
*/
static int fs_gc (lua_State *L) {
  FsBox *b = checkfs(L);  /* __gc is a field Lua code can reach: check */
  FsReq *r = b->r;
  if (r == NULL) return 0;
  b->r = NULL;
  if (b->done) {
    close_unclaimed(r);
    uv_fs_req_cleanup(&r->req);
    free(r);
  }
  else {
    uv_fs_type t = r->req.fs_type;
    r->box = NULL;
    if (t == UV_FS_READ || t == UV_FS_STAT || t == UV_FS_FSTAT || t == UV_FS_SCANDIR ||
        t == UV_FS_OPEN)
      uv_cancel((uv_req_t *)&r->req);
  }
  return 0;
}


void asyncio_fs_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", fs_gc}, {"_wait", fs_wait}, {"_abort", fs_abort}, {"_result", fs_result},
    {"_then_close", fs_then_close}, {NULL, NULL}
  };
  static const luaL_Reg module[] = {
    {"fs", core_fs}, {"fs_now", core_fs_now}, {"guess_handle", core_guess_handle}, {NULL, NULL}
  };
  luaL_newmetatable(L, ASYNCIO_FS);
  asyncio_setfuncs(L, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
