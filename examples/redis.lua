-- A small Redis client speaking RESP (the Redis serialization protocol):
-- commands, replies of every type, and pipelining (many commands sent at
-- once, the replies read after).
--
--   lua5.4 examples/redis.lua [port]      PING, SET, GET and a pipeline
--                                         against redis-server (default 6379)
--   > redis = require "examples.redis"
--   > asyncio.run(function()
--   >   local db = redis.connect("127.0.0.1", 6379)
--   >   print(db:call("SET", "k", "v"), db:call("GET", "k"))
--   > end)

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

-- A Redis error reply, raised by call and kept in place by pipeline.
M.RedisError = setmetatable({}, {__call = function(cls, msg)
  return setmetatable({message = msg}, cls)
end})
M.RedisError.__index = M.RedisError
M.RedisError.__tostring = function(e) return "RedisError: " .. e.message end

-- The wire form of one command: an array of bulk strings.
local function encode(args)
  local parts = {("*%d\r\n"):format(#args)}
  for i = 1, #args do
    local s = tostring(args[i])
    parts[#parts + 1] = ("$%d\r\n%s\r\n"):format(#s, s)
  end
  return table.concat(parts)
end

-- Read one reply: a string, an integer, nil, a list, or a RedisError.
local function read_reply(reader)
  local line = await(reader:readuntil("\r\n"))
  local kind, rest = line:sub(1, 1), line:sub(2, -3)
  if kind == "+" then return rest
  elseif kind == "-" then return M.RedisError(rest)
  elseif kind == ":" then return math.tointeger(tonumber(rest))
  elseif kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    return (await(reader:readexactly(n + 2)):sub(1, n))
  elseif kind == "*" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local list = {n = n}
    for i = 1, n do list[i] = read_reply(reader) end
    return list
  end
  error("redis: protocol error: " .. line)
end

local Client = {}
Client.__index = Client

-- client:call(cmd, args...): send one command, return its reply (an error
-- reply is raised).
function Client:call(...)
  self.writer:write(encode({...}))
  local reply = read_reply(self.reader)
  if getmetatable(reply) == M.RedisError then error(reply, 2) end
  return reply
end

-- client:pipeline(commands): send every command (a list of lists) at once
-- and return the list of replies, in order (error replies in place).
function Client:pipeline(commands)
  local chunk = {}
  for i, cmd in ipairs(commands) do
    chunk[#chunk + 1] = encode(cmd)
    if #chunk == 1000 or i == #commands then
      self.writer:write(table.concat(chunk))
      chunk = {}
    end
  end
  await(self.writer:drain())
  local replies = {}
  for i = 1, #commands do replies[i] = read_reply(self.reader) end
  return replies
end

function Client:close()
  self.writer:close()
  await(self.writer:wait_closed())
end
Client.__close = Client.close

-- connect(host, port): a Client (inside a task).
function M.connect(host, port)
  local reader, writer = await(asyncio.open_connection(host or "127.0.0.1", port or 6379))
  return setmetatable({reader = reader, writer = writer}, Client)
end

-- The demo: PING, SET, GET, INCR, an error reply, a pipeline of opts.n SETs.
function M.main(opts)
  opts = opts or {}
  local db <close> = M.connect(opts.host, opts.port)
  local out = {}
  out.ping = db:call("PING")
  out.set = db:call("SET", "asyncio:greeting", "hello")
  out.get = db:call("GET", "asyncio:greeting")
  out.missing = db:call("GET", "asyncio:missing")
  db:call("DEL", "asyncio:counter")
  out.incr = db:call("INCR", "asyncio:counter")
  out.error = select(2, pcall(db.call, db, "NOSUCHCOMMAND"))
  local n, cmds = opts.n or 1000, {}
  for i = 1, n do cmds[i] = {"INCR", "asyncio:counter"} end
  local replies = db:pipeline(cmds)
  out.pipelined, out.last = #replies, replies[n]
  for _, k in ipairs({"ping", "set", "get", "missing", "incr", "error", "pipelined", "last"}) do
    print(k, tostring(out[k]))
  end
  return out
end

function M.script(args)
  asyncio.run(M.main, {port = tonumber(args[1]) or 6379})
end

if (...) ~= "examples.redis" then M.script(arg or {}) end
return M
