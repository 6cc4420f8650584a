rockspec_format = "3.0"
package = "lua-asyncio"
version = "scm-1"
source = {
  url = "git+file:///dev/null",  -- installed from a checkout: luarocks make
}
description = {
  summary = "Python's asyncio model for Lua 5.4: event loop, tasks, await, timers, queues",
  detailed = [[
    An event loop on libuv with tasks, await, awaitable timers, gather,
    queues, TCP and Unix streams and servers with TLS, subprocesses, UDP,
    files, name resolution and signal handlers, written as a small C core and a Lua layer.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4",
}
-- The Makefile builds and installs: it finds libuv, OpenSSL and Lua's
-- headers through pkg-config (Debian: libuv1-dev, libssl-dev, liblua5.4-dev).
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHARE = "$(LUADIR)",
  },
}
