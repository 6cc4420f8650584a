-- Allocation-failure scenario: an echo server on loopback, clients that
-- write lines and read them back, two readers sharing one stream, a
-- reader cut short by a time limit. Whatever allocation fails, a client
-- never reads bytes it did not send or reads them out of order (what it
-- got is a prefix of what it sent), the run ends, every descriptor is
-- closed once the state is, and the library still works.
local asyncio = require "asyncio"
local await = asyncio.await

local S = {}
local sent, echoed

function S.run()
  sent, echoed = {}, {}
  for i = 1, 4 do sent[i], echoed[i] = "", "" end
  return asyncio.run(function()
    local srv = await(asyncio.start_server(function(r, w)
      for line in r:lines("L") do
        w:write(line)
        await(w:drain())
      end
    end, "127.0.0.1", 0))
    local port = srv:sockets()[1]:getsockname()[2]
    local clients = {}
    for i = 1, 4 do
      clients[i] = asyncio.create_task(function()
        local r, w = await(asyncio.open_connection("127.0.0.1", port))
        local readers = {}
        for k = 1, 2 do  -- two readers of one stream
          readers[k] = asyncio.create_task(function()
            while true do
              local ok, line = pcall(await, asyncio.wait_for(r:readline(), 0.05))
              if not ok or line == "" then return end
              echoed[i] = echoed[i] .. line
            end
          end)
        end
        for n = 1, 5 do
          local line = ("client %d line %d\n"):format(i, n)
          sent[i] = sent[i] .. line  -- first: what is written is always counted
          w:write(line)
          await(w:drain())
        end
        w:write_eof()
        await(asyncio.gather(readers, {return_exceptions = true}))
        w:close()
      end)
    end
    await(asyncio.gather(clients, {return_exceptions = true}))
    srv:close()
    srv:close_clients()
    await(srv:wait_closed())
    return "done"
  end)
end

function S.check(_, _)
  if sent then
    for i = 1, #sent do
      -- two readers may append their lines in either order: compare the lines as sets
      local want = {}
      for line in sent[i]:gmatch("[^\n]*\n") do want[line] = (want[line] or 0) + 1 end
      for line in echoed[i]:gmatch("[^\n]*\n") do
        if not want[line] or want[line] == 0 then
          return false, ("client %d read a line it did not send, or twice: %q"):format(i, line)
        end
        want[line] = want[line] - 1
      end
    end
  end
  if require("asyncio.runtime").loop ~= nil then return false, "a loop is still marked running" end
  local r = asyncio.run(function()
    local srv = await(asyncio.start_server(function(rd, w) w:write(await(rd:readline())) end,
      "127.0.0.1", 0))
    local rd, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
    w:write("42\n")
    local line = await(rd:readline())
    w:close()
    srv:close()
    await(srv:wait_closed())
    return line
  end)
  if r ~= "42\n" then return false, "the library no longer works: " .. tostring(r) end
  return true
end

return S
