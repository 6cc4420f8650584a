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
    queues, TCP and Unix streams and servers, subprocesses, name resolution
    and signal handlers, written as a small C core and a Lua layer.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4",
}
external_dependencies = {
  LIBUV = {header = "uv.h", library = "uv"},
}
build = {
  type = "builtin",
  modules = {
    ["asyncio.core"] = {
      sources = {"src/core.c", "src/fs.c", "src/io.c", "src/loop.c", "src/process.c", "src/queue.c",
                 "src/resolve.c", "src/signal.c", "src/stream.c", "src/task.c", "src/timer.c",
                 "src/udp.c"},
      libraries = {"uv"},
      incdirs = {"$(LIBUV_INCDIR)"},
      libdirs = {"$(LIBUV_LIBDIR)"},
      defines = {"_POSIX_C_SOURCE=200809L"},
    },
    ["asyncio"] = "lua/asyncio/init.lua",
    ["asyncio.errors"] = "lua/asyncio/errors.lua",
    ["asyncio.files"] = "lua/asyncio/files.lua",
    ["asyncio.future"] = "lua/asyncio/future.lua",
    ["asyncio.gather"] = "lua/asyncio/gather.lua",
    ["asyncio.loop"] = "lua/asyncio/loop.lua",
    ["asyncio.queue"] = "lua/asyncio/queue.lua",
    ["asyncio.runtime"] = "lua/asyncio/runtime.lua",
    ["asyncio.streams"] = "lua/asyncio/streams.lua",
    ["asyncio.subprocess"] = "lua/asyncio/subprocess.lua",
    ["asyncio.sync"] = "lua/asyncio/sync.lua",
    ["asyncio.task"] = "lua/asyncio/task.lua",
    ["asyncio.taskgroup"] = "lua/asyncio/taskgroup.lua",
    ["asyncio.timeouts"] = "lua/asyncio/timeouts.lua",
    ["asyncio.udp"] = "lua/asyncio/udp.lua",
    ["asyncio.util"] = "lua/asyncio/util.lua",
  },
}
