-- A broadcast chat server: every line a client sends goes to every other
-- client, prefixed with the sender's name. Each client has a Queue of
-- lines to send; each connection is a task group of two tasks, one that
-- reads the client's lines and one that writes its queue. A client whose
-- queue is full (it does not read) is disconnected.
--
--   lua5.4 examples/chat.lua [port]      serve until Ctrl-C (default 8889);
--                                        try it with: nc 127.0.0.1 8889
--   lua5.4 examples/chat.lua --demo      three clients chat, then leave
--   > chat = require "examples.chat"
--   > asyncio.run(chat.main, {clients = 3})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

local QUEUE_SIZE = 100

-- A chat room: the queues of the clients, by name.
local function new_room() return {clients = {}, count = 0, seq = 0} end

local function broadcast(room, from, text)
  for name, q in pairs(room.clients) do
    if name ~= from then
      if not pcall(q.put_nowait, q, text) then q:shutdown(true) end  -- too slow: drop it
    end
  end
end

-- One connection: ask for a name, then relay lines both ways.
local function handle(room, reader, writer)
  room.seq = room.seq + 1
  writer:write("name? ")
  local name = await(reader:readline()):gsub("%s+$", "")
  if name == "" or room.clients[name] then name = "guest" .. room.seq end
  local q = asyncio.Queue(QUEUE_SIZE)
  room.clients[name] = q
  room.count = room.count + 1
  broadcast(room, name, ("* %s joined\n"):format(name))
  writer:write(("welcome, %s\n"):format(name))
  local ok, err = pcall(await, asyncio.task_group(function(tg)
    tg:create_task(function()  -- the client's lines, to everyone else
      for line in reader:lines() do broadcast(room, name, ("%s: %s\n"):format(name, line)) end
      q:shutdown()              -- the client left: the writer ends once its queue is sent
    end)
    tg:create_task(function()  -- everyone else's lines, to the client
      while true do
        local okget, text = pcall(await, q:get())
        if not okget then break end
        writer:write(text)
        await(writer:drain())
      end
      writer:close()            -- sent all, or dropped as too slow: the reader ends too
    end)
  end))
  room.clients[name] = nil
  room.count = room.count - 1
  broadcast(room, name, ("* %s left\n"):format(name))
  if not ok then error(err, 0) end
end

function M.serve(host, port)
  local room = new_room()
  local server = await(asyncio.start_server(function(r, w) return handle(room, r, w) end,
    host or "127.0.0.1", port or 0))
  return server, room
end

-- A demo: 'opts.clients' clients join, each says one line, and each
-- checks it heard every other one. Returns what each client heard.
function M.main(opts)
  opts = opts or {}
  local n = opts.clients or 3
  local server <close>, room = M.serve("127.0.0.1", 0)
  local port = server:sockets()[1]:getsockname()[2]
  local conns, heard = {}, {}
  for i = 1, n do
    local r, w = await(asyncio.open_connection("127.0.0.1", port))
    await(r:readuntil("? "))
    w:write(("user%d\n"):format(i))
    assert(await(r:readline()) == ("welcome, user%d\n"):format(i))
    conns[i] = {r, w}
    heard[i] = {}
  end
  while room.count < n do await(asyncio.sleep(0)) end
  for i = 1, n do conns[i][2]:write(("hello from %d\n"):format(i)) end
  for i = 1, n do  -- skip the join notices; read the n - 1 hellos
    local r = conns[i][1]
    while #heard[i] < n - 1 do
      local line = await(r:readline())
      if not line:match("^%*") then
        heard[i][#heard[i] + 1] = line:gsub("\n$", "")
        print(("user%d heard %q"):format(i, heard[i][#heard[i]]))
      end
    end
    table.sort(heard[i])
  end
  for i = 1, n do conns[i][2]:close() end
  server:close()
  await(server:wait_closed())
  return heard
end

function M.script(args)
  if args[1] == "--demo" then asyncio.run(M.main, {clients = tonumber(args[2]) or 3}); return end
  asyncio.run(function()
    local server = M.serve("127.0.0.1", tonumber(args[1]) or 8889)
    print(("chat on %s:%d"):format(table.unpack(server:sockets()[1]:getsockname())))
    await(server:serve_forever())
  end)
end

if (...) ~= "examples.chat" then M.script(arg or {}) end
return M
