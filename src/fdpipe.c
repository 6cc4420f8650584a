/*
** fdpipe.c: a read stream over a descriptor the process already holds
** (asyncio.cluster's worker reads the pipe its parent gave it as stdin,
** to see EOF when the parent dies). The stream itself is stream.c's;
** this file only opens it on the descriptor.
*/
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "asyncio.h"


/*
** Move what descriptor 'fd' is to a new descriptor, and put /dev/null in
** its place: the worker's stdin pipe is watched on the new one, and the
** program (io.read, a child that reads its stdin) finds end of file at
** once, as under a service manager, instead of waiting on a pipe the
** primary never writes to. Returns the new descriptor, or a libuv error.
*/
static int move_aside (int fd) {
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3), null;
  if (moved < 0) return -errno;
  null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, fd) < 0) {
    int err = -errno;
    if (null >= 0) close(null);
    close(moved);
    return err;
  }
  close(null);
  return moved;
}


/*
** core.pipe_open(loop, fd, [limit], [aside]) -> stream (reading) | nil,
** err, msg. The stream owns 'fd' from then on: closing it closes the
** descriptor. With 'aside', the stream reads a new descriptor and 'fd'
** becomes /dev/null (see move_aside).
*/
static int core_pipe_open (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int fd = asyncio_checkfd(L, 2);
  lua_Integer limit = luaL_optinteger(L, 3, 65536);
  int aside = lua_toboolean(L, 4), err, idx;
  luaL_argcheck(L, limit > 0, 3, "limit must be positive");
  lua_settop(L, 3);
  if (asyncio_pipe_new(L, lp, 1, (size_t)limit, &err) == NULL)
    return asyncio_pushuverror(L, err);
  idx = lua_gettop(L);
  if (aside) {  /* (after the allocations: a memory error cannot leave it moved) */
    if (fcntl(fd, F_GETFD) < 0) err = UV_EBADF;
    else if ((err = move_aside(fd)) >= 0) { fd = err; err = 0; }
    if (err < 0) {
      asyncio_pipe_abandon(L, idx, 1);
      return asyncio_pushuverror(L, err);
    }
  }
  if ((err = asyncio_pipe_open(L, idx, fd)) < 0) {
    asyncio_pipe_abandon(L, idx, 1);
    if (aside) close(fd);  /* the one we made: nobody else has it */
    return asyncio_pushuverror(L, err);
  }
  asyncio_pipe_start(L, idx, 1);
  return 1;
}


void asyncio_fdpipe_open (lua_State *L) {
  static const luaL_Reg module[] = {{"pipe_open", core_pipe_open}, {NULL, NULL}};
  asyncio_setfuncs(L, module);
}
