-- udp.lua: UDP endpoints on udp.c. open_udp makes one (bound, and
-- connected if remote_addr is given); recvfrom waits for a datagram the C
-- side has queued; send and sendto never wait.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local streams = require "asyncio.streams"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw

local argcheck, typeerror = util.argcheck, util.typeerror
local raise_cancel, wait_object = task.raise_cancel, streams.wait_object
local setmetatable, type = setmetatable, type
local op, mtype = streams.op, math.type

local M = {}

local Endpoint = {__name = "asyncio.DatagramEndpoint"}
Endpoint.__index = Endpoint
M.Endpoint = Endpoint

local function checkep(e, fname) util.checkself(Endpoint, e, fname) end

local function recvfrom_impl(e)
  local t = task.current("recvfrom")
  if t._loop ~= e._loop then raise("recvfrom: the endpoint belongs to a different event loop") end
  while true do
    local data, a, b = e._box:_recv()
    if data then return data, a, b end
    if a ~= "wait" then
      if a == "closed" then throw(errors.oserror("EBADF", "the endpoint is closed", "recvfrom")) end
      throw(errors.oserror(a, b, "recvfrom"))
    end
    -- (the mark is a waiters list: a task whose coroutine is closed while
    -- it waits clears it on its way out, see ObjectWait:_abandon)
    local mark = e._reader
    if not mark then mark = {busy = false}; e._reader = mark end
    if mark.busy then raise("recvfrom: another task is already waiting on this endpoint") end
    mark.busy = true
    local refused = wait_object(t, e._box, mark)
    mark.busy = false
    if refused then raise(refused) end
    if t._must_cancel then raise_cancel(t) end
  end
end

-- endpoint:recvfrom(): an awaitable resulting in data, host, port.
function Endpoint:recvfrom()
  checkep(self, "recvfrom")
  return op(recvfrom_impl, self)
end

-- endpoint:send(data): to the remote address (open_udp's remote_addr).
function Endpoint:send(data)
  checkep(self, "send")
  argcheck(type(data) == "string", 2, "send", typeerror("string", data))
  if not self._remote then raise("send: the endpoint has no remote_addr (use sendto)") end
  local ok, name, msg = self._box:_send(data)
  if not ok then raise(errors.oserror(name, msg, "send")) end
end

-- endpoint:sendto(data, host, port): host a numeric address.
function Endpoint:sendto(data, host, port)
  checkep(self, "sendto")
  argcheck(type(data) == "string", 2, "sendto", typeerror("string", data))
  argcheck(type(host) == "string", 3, "sendto", typeerror("string", host))
  util.checknul(host, 3, "sendto")
  argcheck(mtype(port) == "integer", 4, "sendto", typeerror("integer", port))
  argcheck(port >= 0 and port <= 65535, 4, "sendto", "port out of range")
  if self._remote then raise("sendto: the endpoint is connected (use send)") end
  local ok, name, msg = self._box:_send(data, host, port)
  if not ok then raise(errors.oserror(name, msg, ("sendto %s:%d"):format(host, port))) end
end

-- endpoint:getsockname() -> {host, port}
function Endpoint:getsockname()
  checkep(self, "getsockname")
  local host, port, msg = self._box:_sockname()
  if not host then raise(errors.oserror(port, msg, "getsockname")) end
  return {host, port}
end

function Endpoint:close()
  checkep(self, "close")
  self._box:_close()
end
Endpoint.__close = Endpoint.close

-- The address of {host, port}: a name resolved to its first address, of
-- 'family' (4 or 6) if given.
local function resolve(addr, fname, family)
  local host, port = addr[1], addr[2]
  if host:find(":", 1, true) or host:match("^%d+%.%d+%.%d+%.%d+$") then return host, port end
  local list = task.await(streams.getaddrinfo(host, port, {type = "dgram", family = family}))
  if #list == 0 then throw(errors.gaierror(("%s: no address for %s"):format(fname, host))) end
  return list[1].host, port
end

local function family_of(host) return host:find(":", 1, true) and 6 or 4 end

-- The remote address first: a local name then resolves to the same family
-- ("localhost" to ::1 for a remote ::1, not to 127.0.0.1, which could not
-- reach it).
local function open_impl(opts)
  local t = task.current("open_udp")
  local lhost, lport, rhost, rport
  if opts.remote_addr then rhost, rport = resolve(opts.remote_addr, "open_udp") end
  if opts.local_addr then
    lhost, lport = resolve(opts.local_addr, "open_udp", rhost and family_of(rhost))
  end
  local box, name, msg = core.udp_open(t._loop._core, lhost, lport, rhost, rport,
    opts.reuse_port, opts.broadcast)
  if not box then throw(errors.oserror(name, msg, "open_udp")) end
  return setmetatable({_box = box, _loop = t._loop, _remote = rhost ~= nil}, Endpoint)
end

local function checkaddr(a, fname, what)
  argcheck(a == nil or (type(a) == "table" and type(a[1]) == "string" and mtype(a[2]) == "integer"
    and a[2] >= 0 and a[2] <= 65535), 1, fname, what .. " must be {host, port}")
  util.checknul(a and a[1], 1, fname, what .. "'s host")
end

-- open_udp([opts]) -> awaitable: a DatagramEndpoint. opts: local_addr =
-- {host, port}, remote_addr = {host, port}, reuse_port, broadcast.
function M.open_udp(opts)
  opts = util.checkopts(opts, {local_addr = true, remote_addr = true, reuse_port = true,
    broadcast = true}, 1, "open_udp")
  checkaddr(opts.local_addr, "open_udp", "local_addr")
  checkaddr(opts.remote_addr, "open_udp", "remote_addr")
  return op(open_impl, opts)
end

streams.name_ops{[recvfrom_impl] = "endpoint:recvfrom()", [open_impl] = "asyncio.open_udp(...)"}

return M
