/*
** fdpipe.c: a read stream over a descriptor the process already holds
** (asyncio.cluster's worker reads the pipe its parent gave it as stdin,
** to see EOF when the parent dies). The stream itself is stream.c's;
** this file only opens it on the descriptor.
*/
#include "asyncio.h"


/*
** core.pipe_open(loop, fd, [limit]) -> stream (reading) | nil, err, msg.
** The stream owns 'fd' from then on: closing it closes the descriptor.
*/
static int core_pipe_open (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int fd = asyncio_checkfd(L, 2);
  lua_Integer limit = luaL_optinteger(L, 3, 65536);
  int err, idx;
  luaL_argcheck(L, limit > 0, 3, "limit must be positive");
  lua_settop(L, 3);
  if (asyncio_pipe_new(L, lp, 1, (size_t)limit, &err) == NULL)
    return asyncio_pushuverror(L, err);
  idx = lua_gettop(L);
  if ((err = asyncio_pipe_open(L, idx, fd)) < 0) {
    asyncio_pipe_abandon(L, idx, 1);
    return asyncio_pushuverror(L, err);
  }
  asyncio_pipe_start(L, idx, 1);
  return 1;
}


void asyncio_fdpipe_open (lua_State *L) {
  static const luaL_Reg module[] = {{"pipe_open", core_pipe_open}, {NULL, NULL}};
  asyncio_setfuncs(L, module);
}
