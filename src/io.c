/*
** io.c: what the I/O objects (stream.c, udp.c, process.c, resolve.c,
** fs.c) share: the one task that may wait on each of their events.
*/
#include <stdarg.h>
#include <string.h>

#include "asyncio.h"

/*
** Suspend the running task 'L' until the event of '*slot' wakes it (or a
** cancellation does: Lua then clears '*slot' with the object's _abort).
** 'L' is anchored in user value 'uv' of the object at 'idx'; the loop is
** at 'loopidx'. Returns REFUSED from a coroutine that is not the task's.
*/
int asyncio_io_wait (lua_State *L, Loop *lp, int idx, int uv, lua_State **slot, int loopidx) {
  if (asyncio_running(lp, L) == 0) return asyncio_refuse(L);
  if (*slot != NULL && *slot != L)
    return asyncio_error(L, "another task is already waiting for this event");
  lua_pushthread(L);
  lua_setiuservalue(L, idx, uv);
  *slot = L;
  return asyncio_suspend(L, lp, loopidx);
}


/* obj:_wait(loop), the method of an object of loop 'own' with one waiter
** 'slot' (at 1, its user value 2 anchors the task): suspend until the
** event. Only its own loop's callbacks wake it: another loop is refused. */
int asyncio_io_wait_method (lua_State *L, lua_State **slot, const Loop *own) {
  Loop *lp = asyncio_checkloop(L, 2);
  luaL_argcheck(L, lp == own, 2, "the object belongs to another event loop");
  lua_settop(L, 2);
  return asyncio_io_wait(L, lp, 1, 2, slot, 2);
}


/* From a libuv callback: wake the task in '*slot', if any. */
void asyncio_io_wake (Loop *lp, lua_State **slot) {
  lua_State *co = *slot;
  *slot = NULL;
  if (co != NULL) asyncio_wake0(lp, co);
}


/* Push nil, libuv's name for error 'err' and its message; return 3: how
** every I/O function reports a failure to Lua. */
int asyncio_pushuverror (lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, uv_err_name(err));
  lua_pushstring(L, uv_strerror(err));
  return 3;
}


/* A libuv buffer over the 'n' bytes at 'p'. uv_buf_init takes an unsigned
** int, which would cut a length of 4 GiB or more to its low 32 bits. */
uv_buf_t asyncio_buf (char *p, size_t n) {
  uv_buf_t b;
  b.base = p;
  b.len = n;
  return b;
}


/* Argument 'arg', an integer that must be in [lo, hi] (a descriptor, a
** signal, a mode): one out of range is refused, never cut to an int. */
int asyncio_checkrange (lua_State *L, int arg, lua_Integer lo, lua_Integer hi) {
  lua_Integer v = luaL_checkinteger(L, arg);
  luaL_argcheck(L, v >= lo && v <= hi, arg, "value out of range");
  return (int)v;
}


/* The same, 'def' when the argument is absent or nil. */
int asyncio_optrange (lua_State *L, int arg, int def, lua_Integer lo, lua_Integer hi) {
  return lua_isnoneornil(L, arg) ? def : asyncio_checkrange(L, arg, lo, hi);
}


/* A string argument that C hands on as a C string (a path, a host, a
** name): one with a NUL inside would be cut short there and name something
** else, so it is refused. The Lua modules check first, naming the public
** function; this is the floor under them. */
const char *asyncio_checkname (lua_State *L, int arg) {
  size_t n;
  const char *s = luaL_checklstring(L, arg, &n);
  luaL_argcheck(L, strlen(s) == n, arg, "embedded null byte");
  return s;
}


/* The same, 'def' when the argument is absent or nil. */
const char *asyncio_optname (lua_State *L, int arg, const char *def) {
  return lua_isnoneornil(L, arg) ? def : asyncio_checkname(L, arg);
}


/* Where the library's Lua files are, as their debug sources begin ('@' and
** the directory): errors name the program's line, not one of these. */
static char libsource[512];


/* core.interrupt_config tells it (interrupt.c). */
void asyncio_set_libsource (const char *dir, size_t n) {
  /* a worker thread's state loading asyncio must not rewrite it under the
  ** loop's thread, which reads it */
  if (n + 2 > sizeof libsource || asyncio_in_worker()) return;
  libsource[0] = '@';
  memcpy(libsource + 1, dir, n + 1);
}


/* Is debug source 'source' one of the library's files? */
int asyncio_is_library (const char *source) {
  return libsource[0] != '\0' && strncmp(source, libsource, strlen(libsource)) == 0;
}


/* Push "file:line" of the program's own line (the first Lua frame outside
** the library) that called into the library, or nil. */
void asyncio_pushwhere (lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && !asyncio_is_library(ar.source)) {
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushnil(L);
}


/*
** Raise the message made from 'fmt' as luaL_error does, but at the
** program's own line: the first Lua frame outside the library. A misuse
** found in C (a write to a closed stream) is reported where the program
** made it, not inside streams.lua.
*/
int asyncio_error (lua_State *L, const char *fmt, ...) {
  lua_Debug ar;
  int level;
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && !asyncio_is_library(ar.source)) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      lua_insert(L, -2);
      lua_concat(L, 2);
      break;
    }
  }
  return lua_error(L);
}


/* Raise the error an allocation failure gives: "not enough memory", with
** no position (as Lua's own). */
int asyncio_nomem (lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}
