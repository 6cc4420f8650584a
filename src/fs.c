/*
** fs.c: file system requests on libuv's thread pool. Each request is a
** userdata (an FsBox) the Lua layer waits on; the uv_fs_t lives in
** malloc'd memory, because a collected box (or a cancelled task) cannot
** stop the thread pool: then the callback frees it. The answer is turned
** into Lua values only when Lua asks (_result), in a Lua context.
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asyncio.h"

#define ASYNCIO_FS "asyncio.FsRequest"

typedef struct FsBox FsBox;

typedef struct FsReq {
  uv_fs_t req;
  FsBox *box;                  /* NULL once the box is collected */
  size_t len;                  /* read: the buffer's size */
  uv_file closefd;             /* 1 + a descriptor to close once done (_close_after), or 0 */
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


static void on_fs (uv_fs_t *req) {
  FsReq *r = (FsReq *)req;
  FsBox *b = r->box;
  if (r->closefd > 0) {  /* closing is cheap: here, not another trip to the pool */
    uv_fs_t c;
    uv_fs_close(req->loop, &c, r->closefd - 1, NULL);
    uv_fs_req_cleanup(&c);
    r->closefd = 0;
  }
  if (b == NULL) {
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
  r = (FsReq *)malloc(sizeof *r + extra);
  if (r == NULL) luaL_error(L, "not enough memory");
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
  int op = (int)luaL_checkinteger(L, 2);
  uv_loop_t *uv = &lp->uv;
  FsReq *r;
  lua_settop(L, 6);  /* the request box goes above every argument */
  switch (op) {
    case OP_OPEN: {
      const char *path = luaL_checkstring(L, 3);
      int flags = 0;
      luaL_argcheck(L, mode_flags(luaL_checkstring(L, 4), &flags), 4, "invalid mode");
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_open(uv, &r->req, path, flags,
                                      (int)luaL_optinteger(L, 5, 0666), on_fs));
    }
    case OP_CLOSE:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_close(uv, &r->req, (uv_file)luaL_checkinteger(L, 3), on_fs));
    case OP_READ: {
      lua_Integer n = luaL_checkinteger(L, 4);
      uv_buf_t buf;
      luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 4, "count out of range");
      r = new_req(L, lp, (size_t)n);
      buf = uv_buf_init(r->data, (unsigned)n);
      return started(L, r, uv_fs_read(uv, &r->req, (uv_file)luaL_checkinteger(L, 3), &buf, 1,
                                      (int64_t)luaL_checkinteger(L, 5), on_fs));
    }
    case OP_WRITE: {  /* data: a string, or a list of strings written as one */
      uv_buf_t buf;
      size_t n;
      r = write_req(L, lp, 4, &n);
      buf = uv_buf_init(r->data, (unsigned)n);
      return started(L, r, uv_fs_write(uv, &r->req, (uv_file)luaL_checkinteger(L, 3), &buf, 1,
                                       (int64_t)luaL_checkinteger(L, 5), on_fs));
    }
    case OP_STAT:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_stat(uv, &r->req, luaL_checkstring(L, 3), on_fs));
    case OP_FSTAT:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_fstat(uv, &r->req, (uv_file)luaL_checkinteger(L, 3), on_fs));
    case OP_MKDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_mkdir(uv, &r->req, luaL_checkstring(L, 3),
                                       (int)luaL_optinteger(L, 4, 0777), on_fs));
    case OP_RMDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_rmdir(uv, &r->req, luaL_checkstring(L, 3), on_fs));
    case OP_UNLINK:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_unlink(uv, &r->req, luaL_checkstring(L, 3), on_fs));
    case OP_RENAME:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_rename(uv, &r->req, luaL_checkstring(L, 3),
                                        luaL_checkstring(L, 4), on_fs));
    case OP_SCANDIR:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_scandir(uv, &r->req, luaL_checkstring(L, 3), 0, on_fs));
    case OP_FTRUNCATE:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_ftruncate(uv, &r->req, (uv_file)luaL_checkinteger(L, 3),
                                           (int64_t)luaL_checkinteger(L, 4), on_fs));
    case OP_FSYNC:
      r = new_req(L, lp, 0);
      return started(L, r, uv_fs_fsync(uv, &r->req, (uv_file)luaL_checkinteger(L, 3), on_fs));
    default:
      return luaL_argerror(L, 2, "unknown file system operation");
  }
}


/* core.guess_handle(fd) -> "tty", "pipe", "file", "tcp", "udp" or
** "unknown": what a descriptor is (the async REPL asks of stdin). */
static int core_guess_handle (lua_State *L) {
  switch (uv_guess_handle((uv_file)luaL_checkinteger(L, 1))) {
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
** req:_close_after(fd) -> true if descriptor 'fd' will be closed when the
** request is done (it is still in the pool: closing now could let it
** write to a descriptor reused meanwhile), false if it is done already.
*/
static int fs_close_after (lua_State *L) {
  FsBox *b = checkfs(L);
  lua_Integer fd = luaL_checkinteger(L, 2);
  int pending = b->r != NULL && !b->done;
  if (pending) b->r->closefd = (uv_file)fd + 1;
  lua_pushboolean(L, pending);
  return 1;
}


/*
** core.fs_now(loop, op, ...): OP_WRITE fd data offset -> count, or
** OP_CLOSE fd -> true; or nil, err, msg. Done at once, on the loop's
** thread: for a <close> variable, which cannot wait.
*/
static int core_fs_now (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int op = (int)luaL_checkinteger(L, 2);
  uv_file fd = (uv_file)luaL_checkinteger(L, 3);
  uv_fs_t req;
  int r;
  if (op == OP_WRITE) {
    size_t n;
    const char *p = luaL_checklstring(L, 4, &n);
    uv_buf_t buf = uv_buf_init((char *)p, (unsigned)n);
    r = uv_fs_write(&lp->uv, &req, fd, &buf, 1, (int64_t)luaL_checkinteger(L, 5), NULL);
  }
  else if (op == OP_CLOSE) r = uv_fs_close(&lp->uv, &req, fd, NULL);
  else return luaL_argerror(L, 2, "OP_WRITE or OP_CLOSE expected");
  uv_fs_req_cleanup(&req);
  if (r < 0) return asyncio_pushuverror(L, r);
  if (op == OP_WRITE) lua_pushinteger(L, r);
  else lua_pushboolean(L, 1);
  return 1;
}


static int fs_wait (lua_State *L) {
  return asyncio_io_wait_method(L, &checkfs(L)->waiter);
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
  if (r == NULL) return luaL_error(L, "file system request already consumed");
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


static int fs_gc (lua_State *L) {
  FsBox *b = (FsBox *)lua_touserdata(L, 1);
  FsReq *r = b->r;
  if (r == NULL) return 0;
  b->r = NULL;
  if (b->done) {  /* finished, never read */
    uv_fs_req_cleanup(&r->req);
    free(r);
  }
  else {          /* still in the pool: on_fs frees it */
    r->box = NULL;
    uv_cancel((uv_req_t *)&r->req);
  }
  return 0;
}


void asyncio_fs_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", fs_gc}, {"_wait", fs_wait}, {"_abort", fs_abort}, {"_result", fs_result},
    {"_close_after", fs_close_after}, {NULL, NULL}
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
