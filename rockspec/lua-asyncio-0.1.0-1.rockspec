rockspec_format = "3.0"
package = "lua-asyncio"
version = "0.1.0-1"
-- `make dist` makes this archive (and the .src.rock beside it, which holds
-- the archive and this rockspec): luarocks install ./lua-asyncio-0.1.0-1.src.rock
-- then needs no network.
source = {
  url = "lua-asyncio-0.1.0.tar.gz",
  dir = "lua-asyncio-0.1.0",
}
description = {
  summary = "Python's asyncio model for Lua 5.4: event loop, tasks, await, timers, queues",
  detailed = [[
    An event loop on libuv with tasks, await, awaitable timers, gather,
    queues, TCP and Unix streams and servers with TLS, subprocesses, UDP,
    files, name resolution and signal handlers, written as a small C core and a Lua layer.
  ]],
  license = "MIT",
  labels = {"async", "asyncio", "coroutines", "libuv", "event-loop"},
}
dependencies = {
  "lua >= 5.4, < 5.5",
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
  copy_directories = {"docs", "examples", "types"},
}
-- luarocks test: the busted suite, with the busted the machine has (no
-- download: Debian's lua-busted)
test = {
  type = "command",
  command = "make && busted",
}
