-- A UDP echo server and a client: each datagram comes back as it went.
--
--   lua5.4 examples/udp_echo.lua server [port]       serve until Ctrl-C (default 9999)
--   lua5.4 examples/udp_echo.lua                      both, in one process
--   > udp = require "examples.udp_echo"
--   > asyncio.run(udp.main, {messages = {"a", "b"}})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

-- Echo every datagram to its sender, until the endpoint closes.
function M.serve(server)
  while true do
    local ok, data, host, port = pcall(await, server:recvfrom())
    if not ok then return end
    server:sendto(data, host, port)
  end
end

function M.main(opts)
  opts = opts or {}
  local server <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", opts.port or 0}}))
  local port = server:getsockname()[2]
  local echo = asyncio.create_task(M.serve, server)
  local client <close> = await(asyncio.open_udp({remote_addr = {"127.0.0.1", port}}))
  local got = {}
  for i, msg in ipairs(opts.messages or {"hello", "udp"}) do
    client:send(msg)
    got[i] = await(asyncio.wait_for(client:recvfrom(), 5))
    print(("sent %q, got back %q"):format(msg, got[i]))
  end
  server:close()
  await(echo)
  return got
end

if (...) ~= "examples.udp_echo" then
  local args = arg or {}
  if args[1] == "server" then
    asyncio.run(function()
      local server = await(asyncio.open_udp({local_addr = {"127.0.0.1", tonumber(args[2]) or 9999}}))
      print(("udp echo on 127.0.0.1:%d"):format(server:getsockname()[2]))
      M.serve(server)
    end)
  else
    asyncio.run(M.main)
  end
end
return M
