-- A TCP echo server and client. The server sends every line back; the
-- client sends its lines, prints each answer, and closes.
--
--   lua5.4 examples/echo.lua server [port]        serve until Ctrl-C (default 8888)
--   lua5.4 examples/echo.lua client port line...  send lines to a server
--   lua5.4 examples/echo.lua                      both, in one process
--   > echo = require "examples.echo"
--   > asyncio.run(echo.main, {lines = {"hi", "there"}})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

-- One connection: echo each line until the client closes.
local function handle(reader, writer)
  local peer = writer:get_extra_info("peername")
  for line in reader:lines("L") do
    writer:write(line)
    await(writer:drain())
  end
  print(("closed %s:%d"):format(peer[1], peer[2]))
end

-- Start the echo server on 'host':'port' (port 0: any free one).
function M.server(host, port)
  return await(asyncio.start_server(handle, host or "127.0.0.1", port or 0))
end

-- Send 'lines' to the server at 'port'; return the echoed lines.
function M.client(port, lines, host)
  local reader, writer = await(asyncio.open_connection(host or "127.0.0.1", port))
  local got = {}
  for i, line in ipairs(lines) do
    writer:write(line .. "\n")
    got[i] = await(reader:readline()):gsub("\n$", "")
    print(("sent %q, got back %q"):format(line, got[i]))
  end
  writer:close()
  await(writer:wait_closed())
  return got
end

-- Both ends in one process: a server on a free port, one client.
function M.main(opts)
  opts = opts or {}
  local server <close> = M.server("127.0.0.1", 0)
  local port = server:sockets()[1]:getsockname()[2]
  print(("serving on 127.0.0.1:%d"):format(port))
  local got = M.client(port, opts.lines or {"hello", "echo"})
  server:close()
  await(server:wait_closed())
  return got
end

function M.script(args)
  local mode = args[1]
  if mode == "server" then
    asyncio.run(function()
      local server = M.server("127.0.0.1", tonumber(args[2]) or 8888)
      print(("serving on %s:%d"):format(table.unpack(server:sockets()[1]:getsockname())))
      await(server:serve_forever())
    end)
  elseif mode == "client" then
    local lines = table.move(args, 3, #args, 1, {})
    asyncio.run(M.client, assert(tonumber(args[2]), "usage: echo.lua client PORT LINE..."), lines)
  elseif mode == nil then
    asyncio.run(M.main)
  else
    error("usage: echo.lua [server [PORT] | client PORT LINE...]", 0)
  end
end

if (...) ~= "examples.echo" then M.script(arg or {}) end
return M
