-- streams.lua: what a stream means. StreamReader, StreamWriter, Server,
-- open_connection, start_server and their Unix variants, on the C streams
-- of stream.c, which never wait: they answer "wait", and a task waits here
-- with _wait(kind) until a libuv callback wakes it, then asks again. So a
-- task cancelled mid-read loses nothing: the bytes stay in the C buffer.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local Future = require "asyncio.future"
local rt = require "asyncio.runtime"
local ssl = require "asyncio.ssl"
local task = require "asyncio.task"
local util = require "asyncio.util"
local raise, throw = util.raise, util.throw
local waiters = require "asyncio.waiters"

local argcheck, typeerror, checkself = util.argcheck, util.typeerror, util.checkself
local checknul = util.checknul
local raise_cancel, REFUSED, await = task.raise_cancel, task.REFUSED, task.await
local oserror, IncompleteReadError, LimitOverrunError =
  errors.oserror, errors.IncompleteReadError, errors.LimitOverrunError
local setmetatable, error, type, concat, pcall = setmetatable, error, type, table.concat, pcall
local remove = table.remove
local PENDING = Future.PENDING
local mtype = math.type

local SM = core.stream_methods
local c_read, c_readexactly, c_readuntil, c_wait, c_abort, c_unread = SM._read,
  SM._readexactly, SM._readuntil, SM._wait, SM._abort, SM._unread
local c_write, c_pending, c_close, c_state = SM._write, SM._pending, SM._close, SM._state

local W_READ, W_WRITE, W_OTHER = 0, 1, 2  -- stream.c's waiter kinds
local LIMIT, HIGH, LOW = 65536, 65536, 16384

local M = {}

-- Awaitables ------------------------------------------------------------------

-- Every stream call that waits returns an Op {fn, a, b, c, d}: awaiting
-- it runs fn(a, b, c, d) in the awaiting task. An Op is awaited once.
local Op = {__name = "asyncio.StreamOp"}
function Op.__await(o)
  -- awaited already (busy false), and not handed out again since
  if o.busy == false then raise("await: this stream call was already awaited") end
  local fn, a, b, c, d = o[1], o[2], o[3], o[4], o[5]
  o.busy = false  -- a reader's own Op (see reader_op) may be handed out again
  return fn(a, b, c, d)
end
task.register_awaitable(Op)

-- What op() returns: an Op that knows where the program made it ({fn, a,
-- b, c, d, where, awaited}). Dropped without being awaited, it never ran
-- (a file's write never wrote): its finalizer says so, as a forgotten put
-- is reported, with what the call was (op_names: fn -> "file:write").
local op_names = setmetatable({}, {__mode = "k"})
local TrackedOp = {__name = "asyncio.StreamOp"}
function TrackedOp.__await(o)
  if o[7] then
    raise(("await: %s was already awaited (a call is awaited once)"):format(op_names[o[1]] or
      "this call"))
  end
  o[7] = true
  return o[1](o[2], o[3], o[4], o[5])
end
function TrackedOp.__forgo(o) o[7] = true end  -- handed to a task cancelled before it ran
-- Used as what it stands for (f = open_file(p) then f:lines()): a
-- forgotten await, said so (see task.unawaited_index).
TrackedOp.__index = task.unawaited_index(function(o) return op_names[o[1]] or "an asyncio call" end,
  "it is an awaitable")
TrackedOp.__gc = function(o)
  if o[7] then return end
  rt.report_unawaited(nil, ("%s%s was never awaited: it never ran"):format(
    op_names[o[1]] or "an asyncio call", o[6] and " at " .. o[6] or ""))
end
task.register_awaitable(TrackedOp)
local function op(fn, a, b, c, d)
  return setmetatable({fn, a, b, c, d, util.where() or false, false}, TrackedOp)
end
M.op = op

-- Name the calls whose implementation is 'fn' in reports: name_ops{[fn] =
-- "file:write(...)", ...}.
function M.name_ops(names)
  for fn, name in pairs(names) do op_names[fn] = name end
end

-- The Op of a read on 'r': the reader keeps one and hands it out again
-- once it has been awaited, so a read loop allocates nothing per read.
local debug_reads = false  -- debug mode: each read its own op, reported if never awaited
task.on_debug(function(on) debug_reads = on end)

local function reader_op(r, fn, a, b)
  if debug_reads then return op(fn, r, a, b) end
  local o = r._op
  if o.busy then return setmetatable({fn, r, a, b}, Op) end
  o[1], o[2], o[3], o[4], o.busy = fn, r, a, b, true
  return o
end

-- Waiting -------------------------------------------------------------------------

-- A connection's shared state: its C stream (box), loop, and per waiter
-- kind the list of the tasks waiting for the one that waits in C.
-- While a task waits, a Wait record {conn, kind} is its wait record (see
-- Task:cancel): cancelling removes it from the C stream.
local Wait = {__name = "asyncio.StreamWait"}
Wait.__index = Wait
function Wait._cancel_wait() return false end
function Wait:_abort_wait() c_abort(self[1].box, self[2]) end
local release_turn
-- Its task will never run again: free the wait in C for the next one,
-- and a reader's turn for the next reader.
function Wait:_abandon(t)
  local conn = self[1]
  c_abort(conn.box, self[2])
  local list = conn.waiters[self[2] + 1]
  list.busy = false
  waiters.wake_all(list)
  if conn.reader == t then release_turn(conn) end
end

local function running_task(conn, fname)
  local t = rt.current or rt.running_task()
  if t == nil then raise(("'%s' called outside a running task"):format(fname)) end
  if t._loop ~= conn.loop then
    raise(("'%s': the stream belongs to a different event loop"):format(fname))
  end
  return t
end

-- Suspend the running task until the event of 'kind' may have happened
-- (the caller asks the C stream again). One task waits in C per kind; the
-- others wait in conn.waiters[kind + 1] (waiters.lua) until it wakes, each
-- on its own: cancelling one of them touches nobody else.
local WAIT_WHAT = {"read on a stream", "room to write on a stream (drain)",
                   "stream to connect, close or shake hands"}
local function wait_event(conn, kind, fname)
  local t = running_task(conn, fname)
  task.check_wait()  -- before anything is set up for the wait
  if t._must_cancel then raise_cancel(t) end  -- cancelled while it ran
  local k = kind + 1
  local list = conn.waiters[k]
  if list.busy then return waiters.wait(list, t, WAIT_WHAT[k]) end
  list.busy = true
  t._waiting = conn.recs[k]
  rt.current = false
  local r, msg = c_wait(conn.box, kind, t._loop._core)
  rt.current = t
  t._waiting = false
  list.busy = false
  if list[1] then waiters.wake_all(list) end
  if r == REFUSED then c_abort(conn.box, kind); raise(msg) end
  if t._must_cancel then raise_cancel(t) end
end

-- A new connection state for C stream 'box' on EventLoop 'loop'.
local function new_conn(box, loop, limit)
  local conn = {box = box, loop = loop, limit = limit or LIMIT, high = HIGH, low = LOW,
                waiters = {{busy = false}, {busy = false}, {busy = false}},
                reader = false, turns = {}}
  conn.recs = {setmetatable({conn, W_READ}, Wait), setmetatable({conn, W_WRITE}, Wait),
               setmetatable({conn, W_OTHER}, Wait)}
  return conn
end
M.new_conn = new_conn

local function raise_oserror(name, msg, what)
  throw(oserror(name, msg, what))
end

-- The turn to read ---------------------------------------------------------

-- Readers of one stream take the bytes one at a time, in the order they
-- asked: conn.reader is the task whose turn it is (false: nobody's), and
-- conn.turns the FIFO list of futures of the tasks waiting for theirs
-- (each with its task in _reader). A reader keeps its turn through all its
-- waits, so a task reading line after line cannot jump ahead of the tasks
-- that asked before its next read, and a read that waits for more bytes
-- (readexactly, readuntil, read to EOF) sees nobody take the ones there.

-- Hand the turn of 'conn' to the first reader still waiting for it.
function release_turn(conn)
  local turns = conn.turns
  while turns[1] do
    local f = remove(turns, 1)
    if f._state == PENDING then
      conn.reader = f._reader
      f:set_result()
      return
    end
  end
  conn.reader = false
end

-- A task waiting for its turn will never run again (task.lua's abandon).
local function abandon_turn(f)
  local conn = f._conn
  if conn.reader == f._reader then release_turn(conn)
  else
    for i = 1, #conn.turns do
      if conn.turns[i] == f then remove(conn.turns, i) break end
    end
  end
end

-- Wait until it is task 't's turn to read 'conn'. Cancelled, it leaves
-- the line; cancelled after its turn came, it passes the turn on.
local function wait_turn(conn, t)
  local f = Future._new(Future, t._loop)
  f._what, f._reader, f._conn, f._on_abandon = "turn to read a stream", t, conn, abandon_turn
  local turns = conn.turns
  turns[#turns + 1] = f
  local ok, err = pcall(await, f)
  if not ok then
    if conn.reader == t then release_turn(conn)
    else
      for i = 1, #turns do
        if turns[i] == f then remove(turns, i) break end
      end
    end
    error(err, 0)
  end
end

-- The end of a read run by with_turn: the turn goes to the next reader;
-- results returned, or the error raised (a reader that fails or is
-- cancelled also drops what its readexactly wanted buffered).
local function end_turn(conn, t, ok, ...)
  if conn.reader == t then release_turn(conn) end
  if ok then return ... end
  c_abort(conn.box, W_READ)
  error((...), 0)
end

-- Run fn(r, a, b) in the running task when it is its turn to read r.
-- Nobody reading or waiting: at once, without allocating (the hot path).
local function with_turn(fn, r, a, b)
  local conn = r._conn
  local t = rt.current or rt.running_task()
  if t == nil then return fn(r, a, b) end  -- running_task raises the error
  if conn.reader then wait_turn(conn, t) else conn.reader = t end
  return end_turn(conn, t, pcall(fn, r, a, b))
end

-- StreamReader --------------------------------------------------------------

local StreamReader = {__name = "asyncio.StreamReader"}
StreamReader.__index = StreamReader
M.StreamReader = StreamReader

local function checkreader(r, fname) checkself(StreamReader, r, fname) end

-- Read 'conn' to EOF into 'parts' (parts.n chunks so far).
local function read_chunks(conn, parts)
  while true do
    local s, state, name, msg = c_read(conn.box, conn.limit)
    if s then
      if s == "" then return end
      local n = parts.n + 1
      parts[n], parts.n = s, n
    elseif state == "wait" then wait_event(conn, W_READ, "read")
    else raise_oserror(name, msg, "read") end
  end
end

-- Everything until EOF. Cancelled or failing partway, the chunks taken
-- so far go back in front of the buffer: the next read gets them.
local function read_all(conn)
  local parts = {n = 0}
  local ok, err = pcall(read_chunks, conn, parts)
  local data = concat(parts, "", 1, parts.n)
  if ok then return data end
  c_unread(conn.box, data)
  error(err, 0)
end

local function read_body(r, n)
  local conn = r._conn
  if n < 0 then return read_all(conn) end
  if n == 0 then return "" end
  while true do
    local s, state, name, msg = c_read(conn.box, n)
    if s then return s end
    if state == "wait" then wait_event(conn, W_READ, "read")
    else raise_oserror(name, msg, "read") end
  end
end

local function read_impl(r, n) return with_turn(read_body, r, n) end

-- unread(reader, data): put 'data' back in front of what 'reader' holds
-- (communicate gives back what it read when it is cancelled).
function M.unread(r, data) c_unread(r._conn.box, data) end

-- reader:read([n]): up to n bytes; -1 or nil: everything until EOF; "" at EOF.
function StreamReader:read(n)
  checkreader(self, "read")
  argcheck(n == nil or mtype(n) == "integer", 2, "read", typeerror("integer", n))
  return reader_op(self, read_impl, n or -1)
end

local function readexactly_body(r, n)
  local conn = r._conn
  while true do
    local s, state, name, msg = c_readexactly(conn.box, n)
    if s then return s end
    if state == "wait" then wait_event(conn, W_READ, "readexactly")
    elseif state == "eof" then
      throw(IncompleteReadError(c_read(conn.box, -1) or "", n))
    else raise_oserror(name, msg, "read") end
  end
end

local function readexactly_impl(r, n) return with_turn(readexactly_body, r, n) end

-- reader:readexactly(n): exactly n bytes, or IncompleteReadError at EOF.
function StreamReader:readexactly(n)
  checkreader(self, "readexactly")
  argcheck(mtype(n) == "integer" and n >= 0, 2, "readexactly",
    mtype(n) == "integer" and "n must be non-negative" or typeerror("integer", n))
  return reader_op(self, readexactly_impl, n)
end

local OVER_FOUND = "separator is found, but chunk is longer than limit"
local OVER_NOT_FOUND = "separator is not found, and chunk exceeds the limit"

local function readuntil_body(r, sep, fname)
  local conn = r._conn
  while true do
    local s, state, a, b = c_readuntil(conn.box, sep)
    if s then return s end
    if state == "wait" then wait_event(conn, W_READ, fname or "readuntil")
    elseif state == "eof" then throw(IncompleteReadError(c_read(conn.box, -1) or "", nil))
    elseif state == "limit" then
      throw(LimitOverrunError(b and OVER_FOUND or OVER_NOT_FOUND, a))
    else raise_oserror(a, b, "read") end
  end
end

local function checksep(sep, fname)
  if type(sep) == "string" then
    argcheck(sep ~= "", 2, fname, "separator must not be empty")
    return
  end
  argcheck(type(sep) == "table" and #sep > 0, 2, fname, typeerror("string or list of strings", sep))
  for i = 1, #sep do
    argcheck(type(sep[i]) == "string" and sep[i] ~= "", 2, fname,
      "separators must be non-empty strings")
  end
end

local function readuntil_impl(r, sep) return with_turn(readuntil_body, r, sep) end

-- reader:readuntil([sep]): the bytes up to and including 'sep' (default
-- "\n"; a list: whichever comes first).
function StreamReader:readuntil(sep)
  checkreader(self, "readuntil")
  if sep == nil then sep = "\n" end
  checksep(sep, "readuntil")
  return reader_op(self, readuntil_impl, sep)
end

-- Drop the rest of an overlong line, through its "\n" (waiting for it).
local function skip_line(conn)
  while true do
    local s, state, consumed, found = c_readuntil(conn.box, "\n")
    if s then return end
    if state == "limit" then
      if found then conn.box:_discard(consumed + 1); return end
      c_read(conn.box, -1)
    elseif state == "wait" then wait_event(conn, W_READ, "readline")
    else return end  -- EOF or an error: nothing more to drop
  end
end

-- A line with its "\n"; the rest of the data at EOF ("" at EOF). A line
-- over the limit is dropped whole (the next readline gets the next line)
-- and LimitOverrunError raised.
local function readline_body(r)
  local ok, line = pcall(readuntil_body, r, "\n", "readline")
  if ok then return line end
  if IncompleteReadError:is(line) then return line.partial end
  if LimitOverrunError:is(line) then skip_line(r._conn) end
  error(line, 0)
end

local function readline_impl(r) return with_turn(readline_body, r) end

function StreamReader:readline()
  checkreader(self, "readline")
  return reader_op(self, readline_impl)
end

-- for line in reader:lines([fmt]) do ... end, inside a task: each line
-- without its "\n" ("L": with it), until EOF.
function StreamReader:lines(fmt)
  checkreader(self, "lines")
  argcheck(fmt == nil or fmt == "l" or fmt == "L", 2, "lines", "format must be \"l\" or \"L\"")
  local keep = fmt == "L"
  return function()
    local line = readline_impl(self)
    if line == "" then return nil end
    if not keep and line:sub(-1) == "\n" then line = line:sub(1, -2) end
    return line
  end
end

function StreamReader:at_eof()
  checkreader(self, "at_eof")
  local n, eof = self._conn.box:_buffered()
  return eof and n == 0
end

function StreamReader:__tostring()
  local n, eof = self._conn.box:_buffered()
  return ("<asyncio.StreamReader %d bytes%s>"):format(n, eof and " eof" or "")
end

-- StreamWriter ----------------------------------------------------------------

local StreamWriter = {__name = "asyncio.StreamWriter"}
StreamWriter.__index = StreamWriter
M.StreamWriter = StreamWriter

local function checkwriter(w, fname) checkself(StreamWriter, w, fname) end

-- writer:write(data): buffer 'data' (a string); never waits.
function StreamWriter:write(data)
  checkwriter(self, "write")
  argcheck(type(data) == "string", 2, "write", typeerror("string", data))
  c_write(self._conn.box, data)  -- raises "write: the stream is closed"
end

function StreamWriter:writelines(list)
  checkwriter(self, "writelines")
  argcheck(type(list) == "table", 2, "writelines", typeerror("table", list))
  for i = 1, #list do
    argcheck(type(list[i]) == "string", 2, "writelines", "list of strings expected")
  end
  local conn = self._conn
  if c_state(conn.box) then raise("writelines: the stream is closed") end
  c_write(conn.box, concat(list))
end

local function drain_impl(w)
  local conn = w._conn
  local pending, name, msg = c_pending(conn.box)
  if name then raise_oserror(name, msg, "write") end
  if pending <= conn.high then
    if c_state(conn.box) then
      task.await(task.sleep(0))  -- let the close run
      pending, name, msg = c_pending(conn.box)
      if name then raise_oserror(name, msg, "write") end
      -- closing with nothing left to send: lost, as CPython's drain says
      if pending == 0 then
        throw(errors.ConnectionResetError("connection lost", {errno = "ECONNRESET"}))
      end
    end
    return
  end
  repeat
    wait_event(conn, W_WRITE, "drain")
    pending, name, msg = c_pending(conn.box)
    if name then raise_oserror(name, msg, "write") end
    if c_state(conn.box) then
      throw(errors.ConnectionResetError("connection lost", {errno = "ECONNRESET"}))
    end
  until pending <= conn.low
end

-- A drain that has to wait: {writer, bytes pending, where it was made}.
-- Dropped without being awaited, the writer never waited for its peer:
-- reported (rt.report_dropped at the end of asyncio.run, or when collected).
local DrainOp = {__name = "asyncio.StreamWriter.drain"}
DrainOp.__index = DrainOp
function DrainOp.__await(o)
  o._awaited = true
  return drain_impl(o[1])
end
function DrainOp._unawaited(o)
  return ("writer:drain()%s was never awaited: %d bytes were queued beyond the high-water " ..
    "mark and the writer did not wait for them"):format(o[3] and " at " .. o[3] or "", o[2])
end
DrainOp.__gc = function(o)  -- marked: see queue.lua's PutOp.__gc
  if o._awaited then return end
  o._awaited = true
  rt.report_unawaited(o[1]._conn.loop, o:_unawaited())
end
task.register_awaitable(DrainOp)

-- writer:drain(): wait while more than the high-water mark is pending
-- (down to the low-water mark); raises the connection's write error. The
-- common case, nothing much queued, returns the done awaitable: no table.
function StreamWriter:drain()
  checkwriter(self, "drain")
  local conn = self._conn
  local pending, name = c_pending(conn.box)
  if not name and pending <= conn.high and not c_state(conn.box) then return task.DONE end
  local o = setmetatable({self, pending, util.where()}, DrainOp)
  rt.unawaited[o] = true
  return o
end

-- writer:set_write_buffer_limits([high], [low]), as CPython's transports.
function StreamWriter:set_write_buffer_limits(high, low)
  checkwriter(self, "set_write_buffer_limits")
  argcheck(high == nil or (mtype(high) == "integer" and high >= 0), 2, "set_write_buffer_limits",
    "high must be a non-negative integer")
  argcheck(low == nil or (mtype(low) == "integer" and low >= 0), 3, "set_write_buffer_limits",
    "low must be a non-negative integer")
  high = high or (low and low * 4) or HIGH
  low = low or high // 4
  argcheck(low <= high, 3, "set_write_buffer_limits", "low must not exceed high")
  local conn = self._conn
  conn.high, conn.low = high, low
  conn.box:_set_low(low)
end

function StreamWriter:get_write_buffer_size()
  checkwriter(self, "get_write_buffer_size")
  return (c_pending(self._conn.box))
end

function StreamWriter:can_write_eof()
  checkwriter(self, "can_write_eof")
  return true
end

-- writer:write_eof(): send EOF after what is buffered (half-close).
function StreamWriter:write_eof()
  checkwriter(self, "write_eof")
  local conn = self._conn
  if c_state(conn.box) then raise("write_eof: the stream is closed") end
  local ok, name, msg = conn.box:_shutdown()
  if not ok then raise_oserror(name, msg, "write_eof") end
end

local function close_conn(conn, hard)
  if conn.loop._core:is_closed() then return end
  c_close(conn.box, conn.loop._core, hard)
end
M.close_conn = close_conn

-- writer:close(): close the stream; what is queued is still sent first
-- (wait_closed waits for that). Idempotent.
function StreamWriter:close()
  checkwriter(self, "close")
  close_conn(self._conn)
end
StreamWriter.__close = StreamWriter.close

function StreamWriter:is_closing()
  checkwriter(self, "is_closing")
  return (c_state(self._conn.box))
end

local function wait_closed_impl(w)
  local conn = w._conn
  while true do
    local _, closed = c_state(conn.box)
    if closed or conn.loop._core:is_closed() then return end
    wait_event(conn, W_OTHER, "wait_closed")
  end
end

-- writer:wait_closed(): an awaitable done once the socket is closed.
function StreamWriter:wait_closed()
  checkwriter(self, "wait_closed")
  return op(wait_closed_impl, self)
end

-- writer:get_extra_info(name, [default]): "peername", "sockname" ({host,
-- port} or a path), "fd"; with TLS also "sslcontext", "cipher" ({name,
-- protocol, bits}), "peercert" ({subject, issuer, notBefore, notAfter}).
local TLS_INFO = {cipher = true, peercert = true}
function StreamWriter:get_extra_info(name, default)
  checkwriter(self, "get_extra_info")
  local conn = self._conn
  local box = conn.box
  if conn.ssl and (name == "sslcontext" or TLS_INFO[name]) then
    local v
    if name == "sslcontext" then v = conn.ssl else v = box:_tlsinfo(name) end
    if v == nil then return default end
    return v
  elseif name == "fd" then
    local fd = box:_fd()
    if fd < 0 then return default end
    return fd
  elseif name == "peername" or name == "sockname" then
    local a, b = box:_name(name == "peername")
    if a == nil then return default end
    if b == nil then return a end
    return {a, b}
  end
  return default
end

function StreamWriter:__tostring()
  local closing = c_state(self._conn.box)
  return ("<asyncio.StreamWriter%s>"):format(closing and " closing" or "")
end

local function pair(conn)
  return setmetatable({_conn = conn, _op = setmetatable({busy = false}, Op)}, StreamReader),
    setmetatable({_conn = conn}, StreamWriter)
end
M.pair = pair

-- Names -------------------------------------------------------------------------

-- The wait record of a C object with _wait(loop) and _abort(): a name or
-- file request, a process, a UDP endpoint. Cancelling forgets the waiter.
local ObjectWait = {__name = "asyncio.ObjectWait"}
ObjectWait.__index = ObjectWait
function ObjectWait._cancel_wait() return false end
function ObjectWait:_abort_wait() self[1]:_abort() end
function ObjectWait:_abandon()  -- see Wait:_abandon
  self[1]:_abort()
  local list = self[2]
  if list then
    list.busy = false
    waiters.wake_all(list)
  end
  if self[3] then waiters.release(self[3]) end  -- the turn its task held (a File's)
end

-- Suspend task 't' until C object 'obj' wakes it (or a cancellation:
-- the caller checks t._must_cancel); 'list', the waiters.lua list of the
-- tasks behind it, if any; 'turn', a waiters.lua turn 't' holds, handed on
-- if 't' is closed by hand meanwhile. Returns the refusal message if 't'
-- is not running in its own coroutine, for the caller to raise.
local function wait_object(t, obj, list, turn)
  if t._must_cancel then return end  -- cancelled while it ran: the caller raises
  if not coroutine.isyieldable() then return task.NOWAIT_MSG end  -- nothing set up yet
  t._waiting = setmetatable({obj, list, turn}, ObjectWait)
  rt.current = false
  local r, msg = obj:_wait(t._loop._core)
  rt.current = t
  t._waiting = false
  if r == REFUSED then obj:_abort(); return msg end
end
M.wait_object = wait_object

-- Wait for request 'req' (resolve.c, fs.c) in task 't': its answers, or
-- its OSError raised ('what' says what failed; 'turn': see wait_object).
local function await_request(t, what, req, turn)
  while true do
    local a, b, c = req:_result()
    if a == nil then raise_oserror(b, c, what) end
    if a ~= false then return a, b end
    local refused = wait_object(t, req, nil, turn)
    if refused then raise(refused) end
    if t._must_cancel then raise_cancel(t) end
  end
end
M.await_request = await_request

local FAMILIES = {[0] = 0, [4] = 4, [6] = 6, inet = 4, inet6 = 6, unspec = 0}
local SOCKTYPES = {stream = 1, dgram = 2}

local function getaddrinfo_impl(host, port, opts)
  local t = task.current("getaddrinfo")
  local req, name, msg = core.getaddrinfo(t._loop._core, host, port and tostring(port),
    FAMILIES[opts.family or 0], SOCKTYPES[opts.type] or 0, opts.passive)
  -- libuv refuses an empty name or one over 255 bytes (EINVAL) before the
  -- system sees it; the system would not know it: a gaierror, as CPython's
  if not req and name == "EINVAL" and host and (host == "" or #host > 255) then
    name, msg = "EAI_NONAME", "unknown node or service"
  end
  if not req then raise_oserror(name, msg, ("getaddrinfo %s"):format(tostring(host))) end
  return (await_request(t, ("getaddrinfo %s"):format(tostring(host)), req))
end

-- getaddrinfo(host, [port], [opts]) -> awaitable: a list of {family = 4|6,
-- host, port, socktype}. opts: family (4, 6), type ("stream", "dgram"),
-- passive.
function M.getaddrinfo(host, port, opts)
  argcheck(host == nil or type(host) == "string", 1, "getaddrinfo", typeerror("string", host))
  checknul(host, 1, "getaddrinfo")
  checknul(port, 2, "getaddrinfo")
  argcheck(port == nil or mtype(port) == "integer" or type(port) == "string", 2, "getaddrinfo",
    typeerror("integer or string", port))
  local pnum = math.tointeger(tonumber(port))  -- "70000" too: the resolver would wrap it
  argcheck(pnum == nil or (pnum >= 0 and pnum <= 65535), 2, "getaddrinfo", "port out of range")
  opts = util.checkopts(opts, {family = true, type = true, passive = true}, 3, "getaddrinfo")
  argcheck(FAMILIES[opts.family or 0] ~= nil, 3, "getaddrinfo", "family must be 4 or 6")
  argcheck(opts.type == nil or SOCKTYPES[opts.type], 3, "getaddrinfo",
    "type must be \"stream\" or \"dgram\"")
  argcheck(host ~= nil or port ~= nil, 1, "getaddrinfo", "host or port expected")
  return op(getaddrinfo_impl, host, port, opts)
end

local function getnameinfo_impl(host, port, numeric)
  local t = task.current("getnameinfo")
  local req, name, msg = core.getnameinfo(t._loop._core, host, port, numeric)
  if not req then raise_oserror(name, msg, ("getnameinfo %s"):format(host)) end
  return await_request(t, ("getnameinfo %s"):format(host), req)
end

-- getnameinfo(host, port, [numeric]) -> awaitable: name, service.
function M.getnameinfo(host, port, numeric)
  argcheck(type(host) == "string", 1, "getnameinfo", typeerror("string", host))
  checknul(host, 1, "getnameinfo")
  argcheck(mtype(port) == "integer", 2, "getnameinfo", typeerror("integer", port))
  argcheck(port >= 0 and port <= 65535, 2, "getnameinfo", "port out of range")
  return op(getnameinfo_impl, host, port, numeric)
end

local function isnumeric(host)
  return host:find(":", 1, true) ~= nil or host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- The addresses to try for 'host': itself if numeric, else resolved.
local function addresses(host, port, family, passive)
  if isnumeric(host) then return {{host = host, port = port}} end
  local list = getaddrinfo_impl(host, port, {family = family, type = "stream", passive = passive})
  if #list == 0 then
    throw(errors.gaierror(("no address for %s"):format(host), {errno = "EAI_NONAME"}))
  end
  return list
end

-- TLS ------------------------------------------------------------------------

-- Run the TLS handshake on 'conn' with SSLContext 'ctx' ('hostname' for
-- SNI and the certificate check); on failure, cancellation or after
-- 'timeout' seconds the connection is aborted and the error raised.
local function handshake(conn, ctx, hostname, timeout, what)
  local box = conn.box
  local ok, name, msg = box:_starttls(ctx._ctx, hostname)
  if not ok then
    close_conn(conn, true)
    raise_oserror(name, msg, what)
  end
  conn.ssl = ctx
  local timer, late = nil, false
  if timeout then
    timer = conn.loop:call_later(timeout, function() late = true; close_conn(conn, true) end)
  end
  local done, err = pcall(function()
    while true do
      local r, ename, emsg = box:_handshake()
      if r then conn.handshaken = true; return end
      if r == nil then raise_oserror(ename, emsg, what) end
      wait_event(conn, W_OTHER, "handshake")
    end
  end)
  if timer then timer:cancel() end
  if not done then
    close_conn(conn, true)
    if late then  -- stamped with the program's line, as the library's other errors
      throw(errors.ConnectionAbortedError(("TLS handshake is taking longer than %g seconds: " ..
        "aborting the connection (%s)"):format(timeout, what), {errno = "ECONNABORTED"}))
    end
    error(err, 0)
  end
end

local function checktimeout(t, n, fname)
  argcheck(t == nil or (type(t) == "number" and t > 0 and t == t), n, fname,
    "ssl_handshake_timeout must be a positive number of seconds")
  return t or 60
end

local function start_tls_impl(w, ctx, hostname, timeout)
  local conn = w._conn
  if c_state(conn.box) then raise("start_tls: the stream is closed") end
  if conn.ssl then raise("start_tls: the stream uses TLS already") end
  handshake(conn, ctx, hostname, timeout, "start_tls")
end

-- Check option server_hostname of 'fname' (argument n) for context 'ctx'.
-- An empty name would be sent as none and checked as none: refused where
-- the context verifies (CPython: check_hostname requires server_hostname).
local function check_hostname(name, ctx, n, fname)
  argcheck(name == nil or type(name) == "string", n, fname, "server_hostname must be a string")
  checknul(name, n, fname, "server_hostname")
  argcheck(name ~= "" or not (ctx and ctx.verify and ctx.mode == "client"), n, fname,
    "server_hostname is empty: the certificate's name could not be checked")
end

-- writer:start_tls(ctx, [opts]) -> awaitable: upgrade the connection to
-- TLS in place (STARTTLS). opts: server_hostname (a client context;
-- default none: no name check), ssl_handshake_timeout (60 s). A server
-- context makes this side the TLS server.
function StreamWriter:start_tls(ctx, opts)
  checkwriter(self, "start_tls")
  argcheck(getmetatable(ctx) == ssl.SSLContext, 2, "start_tls",
    typeerror("asyncio.SSLContext", ctx))
  opts = util.checkopts(opts, {server_hostname = true, ssl_handshake_timeout = true}, 3,
    "start_tls")
  check_hostname(opts.server_hostname, ctx, 3, "start_tls")
  local timeout = checktimeout(opts.ssl_handshake_timeout, 3, "start_tls")
  return op(start_tls_impl, self, ctx, ctx.mode == "client" and opts.server_hostname or nil,
    timeout)
end

-- Connecting ------------------------------------------------------------------------

local CancelledError = errors.CancelledError

-- Wait until 'conn' is connected; on failure or cancellation it is closed.
local function connected(conn, what)
  local ok, err = pcall(function()
    while true do
      local r, name, msg = conn.box:_connected()
      if r then return end
      if r == nil then raise_oserror(name, msg, what) end
      wait_event(conn, W_OTHER, "open_connection")
    end
  end)
  if not ok then
    close_conn(conn)
    error(err, 0)
  end
end

-- Check the options every open and start function takes: limit, and for
-- TLS ssl, server_hostname (clients) and ssl_handshake_timeout. Returns a
-- copy, with 'ctx' the SSLContext (or nil) and 'timeout' its handshake's.
local OPTIONS = {
  open_connection = {limit = true, local_addr = true, family = true, ssl = true,
                     server_hostname = true, ssl_handshake_timeout = true,
                     happy_eyeballs_delay = true},
  open_unix_connection = {limit = true, ssl = true, server_hostname = true,
                          ssl_handshake_timeout = true},
  start_server = {limit = true, backlog = true, reuse_port = true, family = true, ssl = true,
                  ssl_handshake_timeout = true},
  start_unix_server = {limit = true, backlog = true, ssl = true, ssl_handshake_timeout = true},
}

local function checkopts(opts, n, fname, mode)
  opts = util.checkopts(opts, OPTIONS[fname], n, fname)
  local limit = opts.limit
  argcheck(limit == nil or (mtype(limit) == "integer" and limit > 0), n, fname,
    "limit must be a positive integer")
  local family, backlog = opts.family, opts.backlog
  argcheck(family == nil or FAMILIES[family] ~= nil, n, fname, "family must be 4 or 6")
  argcheck(backlog == nil or (mtype(backlog) == "integer" and backlog >= 0 and
    backlog <= 0x7fffffff), n, fname, "backlog must be a non-negative integer")
  local ctx = ssl.context_of(opts.ssl, mode, n, fname)
  argcheck(opts.server_hostname == nil or (mode == "client" and ctx), n, fname,
    "server_hostname is only meaningful with ssl")
  check_hostname(opts.server_hostname, ctx, n, fname)
  argcheck(opts.ssl_handshake_timeout == nil or ctx, n, fname,
    "ssl_handshake_timeout is only meaningful with ssl")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.ctx, o.timeout = ctx, checktimeout(opts.ssl_handshake_timeout, n, fname)
  return o
end

local function open_connection_impl(host, port, opts)
  local ctx, timeout = opts.ctx, opts.timeout
  local t = task.current("open_connection")
  local loop = t._loop
  local local_host, local_port
  if opts.local_addr then local_host, local_port = opts.local_addr[1], opts.local_addr[2] end
  local lasterr
  for _, a in ipairs(addresses(host, port, opts.family)) do
    local what = ("connect to %s:%d"):format(a.host, a.port)
    local box, name, msg = core.tcp_connect(loop._core, a.host, a.port, opts.limit, local_host,
      local_port)
    if box then
      local conn = new_conn(box, loop, opts.limit)
      local ok, err = pcall(connected, conn, what)
      if ok then
        if ctx then
          handshake(conn, ctx, opts.server_hostname or host, timeout,
            ("TLS handshake with %s:%d"):format(a.host, a.port))
        end
        return pair(conn)
      end
      if CancelledError:is(err) then error(err, 0) end
      lasterr = err
    else
      lasterr = oserror(name, msg, what)
    end
  end
  error(lasterr, 0)
end

-- open_connection(host, port, [opts]) -> awaitable: reader, writer.
-- opts: limit, local_addr = {host, port}, family (4, 6), ssl (an
-- SSLContext or true), server_hostname (default: host),
-- ssl_handshake_timeout (60 s).
function M.open_connection(host, port, opts)
  argcheck(type(host) == "string", 1, "open_connection", typeerror("string", host))
  checknul(host, 1, "open_connection")
  argcheck(mtype(port) == "integer" and port >= 0 and port <= 65535, 2, "open_connection",
    mtype(port) == "integer" and "port out of range" or typeerror("integer", port))
  opts = checkopts(opts, 3, "open_connection", "client")
  local la = opts.local_addr
  argcheck(la == nil or (type(la) == "table" and type(la[1]) == "string" and
    (la[2] == nil or (mtype(la[2]) == "integer" and la[2] >= 0 and la[2] <= 65535))),
    3, "open_connection", "local_addr must be {host, port} (a port from 0 to 65535)")
  checknul(la and la[1], 3, "open_connection", "local_addr's host")
  return op(open_connection_impl, host, port, opts)
end

local function open_unix_impl(path, opts)
  local ctx, timeout = opts.ctx, opts.timeout
  local t = task.current("open_unix_connection")
  local what = ("connect to %s"):format(path)
  local box, name, msg = core.pipe_connect(t._loop._core, path, opts.limit)
  if not box then raise_oserror(name, msg, what) end
  local conn = new_conn(box, t._loop, opts.limit)
  connected(conn, what)
  if ctx then handshake(conn, ctx, opts.server_hostname, timeout, "TLS handshake with " .. path) end
  return pair(conn)
end

-- open_unix_connection(path, [opts]) -> awaitable: reader, writer.
-- With ssl, the certificate's name is checked only against server_hostname.
function M.open_unix_connection(path, opts)
  argcheck(type(path) == "string", 1, "open_unix_connection", typeerror("string", path))
  checknul(path, 1, "open_unix_connection")
  opts = checkopts(opts, 2, "open_unix_connection", "client")
  return op(open_unix_impl, path, opts)
end

-- Servers ------------------------------------------------------------------------

local Server = {__name = "asyncio.Server"}
Server.__index = Server
M.Server = Server

local function checkserver(s, fname) checkself(Server, s, fname) end

-- The server is closed and its last client gone: wake wait_closed.
local function check_closed(srv)
  if not srv._serving and next(srv._clients) == nil and not srv._closed:done() then
    srv._closed:set_result()
  end
end

-- When a connection's task ends, however it ends, its stream is closed
-- and the server forgets it: a <close> variable of serve_client, so that
-- an error of client_cb propagates untouched (its traceback is client_cb's).
local ClientEnd = {__close = function(e)
  local srv, conn = e[1], e[2]
  close_conn(conn)
  srv._clients[conn] = nil
  check_closed(srv)
end}

-- The task of one connection: client_cb(reader, writer) (awaiting what it
-- returns if that is awaitable); the stream is closed when it ends.
local function serve_client(srv, conn)
  local _ <close> = setmetatable({srv, conn}, ClientEnd)
  local reader, writer = pair(conn)
  if srv._ssl then
    local ok, err = pcall(handshake, conn, srv._ssl, nil, srv._hs_timeout, "TLS handshake")
    -- a client whose handshake failed is dropped quietly, as CPython does
    -- for OSErrors (SSLError is one); client_cb never sees it
    if not ok then
      if errors.OSError:is(err) then return end
      error(err, 0)
    end
  end
  local r = srv._cb(reader, writer)
  if task.isawaitable(r) then await(r) end
end

-- Out of descriptors or memory, a listener stops accepting for this long
-- (the connections wait in the kernel's queue), as CPython's does.
local ACCEPT_RETRY_DELAY = 1
local SHORTAGE = {EMFILE = true, ENFILE = true, ENOBUFS = true, ENOMEM = true}

-- A listener's sticky callback (stream.c): accept what waits.
local function on_connection(l)
  local srv = l.server
  local loop = srv._loop
  while srv._serving do
    local box, name, msg = l.box:_accept(loop._core)
    if not box then
      if SHORTAGE[name] then  -- stream.c stopped polling: try again later
        loop:call_exception_handler({message = ("socket.accept() out of system resource; " ..
          "accepting again in %g s"):format(ACCEPT_RETRY_DELAY),
          exception = oserror(name, msg, "accept"), server = srv})
        loop:call_later(ACCEPT_RETRY_DELAY, function()
          if srv._serving then l.box:_resume() end
        end)
      elseif name then
        loop:call_exception_handler({message = "accept failed",
          exception = oserror(name, msg, "accept"), server = srv})
      end
      return
    end
    local conn = new_conn(box, loop, srv._limit)
    srv._clients[conn] = true  -- from now: wait_closed waits for it
    loop:create_task(serve_client, srv, conn)
  end
end

local function new_server(loop, cb, opts)
  return setmetatable({_loop = loop, _cb = cb, _limit = opts.limit, _ssl = opts.ctx,
                       _hs_timeout = opts.timeout, _listeners = {}, _clients = {},
                       _serving = true, _closed = Future._new(Future, loop)}, Server)
end

-- server:close(): stop listening (connections go on; see close_clients).
function Server:close()
  checkserver(self, "close")
  if not self._serving then return end
  self._serving = false
  for _, l in ipairs(self._listeners) do
    close_conn(l)
    if l.ino then core.socket_file(l.path, l.ino) end
  end
  if self._forever and not self._forever:done() then self._forever:set_result() end
  check_closed(self)
end
Server.__close = Server.close

-- server:close_clients(): close every connection of the server (queued
-- bytes still go out); abort_clients(): drop them and close now.
function Server:close_clients()
  checkserver(self, "close_clients")
  for conn in pairs(self._clients) do close_conn(conn) end
end

function Server:abort_clients()
  checkserver(self, "abort_clients")
  for conn in pairs(self._clients) do close_conn(conn, true) end
end

function Server:is_serving()
  checkserver(self, "is_serving")
  return self._serving and not self._loop._core:is_closed()
end


-- Await the server's future 'shared' through a future of this waiter's
-- own: cancelling one waiter (a wait_for's time limit) cancels that one,
-- never the server's, which the other waiters wait on too.
local function await_own(shared)
  if shared:done() then return end
  local own = Future._new(Future, shared._loop)
  local function pass() if not own:done() then own:set_result() end end
  shared:add_done_callback(pass)
  local ok, err = pcall(await, own)
  shared:remove_done_callback(pass)
  if not ok then error(err, 0) end
end

local function wait_server_closed_impl(srv) await_own(srv._closed) end

-- server:wait_closed(): an awaitable done when the server is closed and
-- every connection it accepted has ended.
function Server:wait_closed()
  checkserver(self, "wait_closed")
  return op(wait_server_closed_impl, self)
end

local function serve_forever_impl(srv)
  if not srv._serving then error("serve_forever: the server is closed", 0) end
  srv._forever = srv._forever or Future._new(Future, srv._loop)
  local ok, err = pcall(await_own, srv._forever)
  if not ok then
    srv:close()
    error(err, 0)
  end
end

-- server:serve_forever(): an awaitable that ends when the server is
-- closed; cancelling it closes the server.
function Server:serve_forever()
  checkserver(self, "serve_forever")
  return op(serve_forever_impl, self)
end

function Server:start_serving()
  checkserver(self, "start_serving")
  return task.DONE
end

local Socket = {__name = "asyncio.Socket"}
Socket.__index = Socket
function Socket:getsockname()
  local a, b = self._box:_name(false)
  if b == nil then return a end
  return {a, b}
end
function Socket:fileno() return self._box:_fd() end

-- server:sockets(): the listening sockets, each with :getsockname().
function Server:sockets()
  checkserver(self, "sockets")
  local list = {}
  if self._serving then
    for i, l in ipairs(self._listeners) do list[i] = setmetatable({_box = l.box}, Socket) end
  end
  return list
end

function Server:get_loop()
  checkserver(self, "get_loop")
  return self._loop
end

function Server:__tostring()
  return ("<asyncio.Server %s, %d connections>"):format(self._serving and "serving" or "closed",
    (function() local n = 0 for _ in pairs(self._clients) do n = n + 1 end return n end)())
end

local function start_server_impl(cb, host, port, opts)
  local t = task.current("start_server")
  local srv = new_server(t._loop, cb, opts)
  local seen = {}
  for _, a in ipairs(addresses(host or "0.0.0.0", port, opts.family, true)) do
    if not seen[a.host] then
      seen[a.host] = true
      local l = {server = srv}
      local box, name, msg = core.tcp_listen(t._loop._core, a.host, a.port, opts.backlog,
        opts.reuse_port, opts.limit, on_connection, l)
      if not box then
        srv:close()
        raise_oserror(name, msg, ("listen on %s:%d"):format(a.host, a.port))
      end
      l.box, l.loop = box, t._loop
      srv._listeners[#srv._listeners + 1] = l
    end
  end
  return srv
end

-- start_server(client_cb, [host], port, [opts]) -> awaitable: a Server.
-- client_cb(reader, writer) runs in a new task per connection. opts:
-- backlog, reuse_port, limit, family, ssl (a server SSLContext: the
-- handshake is done before client_cb runs), ssl_handshake_timeout.
function M.start_server(cb, host, port, opts)
  argcheck(type(cb) == "function", 1, "start_server", typeerror("function", cb))
  argcheck(host == nil or type(host) == "string", 2, "start_server", typeerror("string", host))
  checknul(host, 2, "start_server")
  argcheck(mtype(port) == "integer" and port >= 0 and port <= 65535, 3, "start_server",
    mtype(port) == "integer" and "port out of range" or typeerror("integer", port))
  opts = checkopts(opts, 4, "start_server", "server")
  return op(start_server_impl, cb, host, port, opts)
end

local function start_unix_impl(cb, path, opts)
  local t = task.current("start_unix_server")
  local srv = new_server(t._loop, cb, opts)
  local l = {server = srv}
  local box, name, msg = core.pipe_listen(t._loop._core, path, opts.backlog, opts.limit,
    on_connection, l)
  if not box then raise_oserror(name, msg, ("listen on %s"):format(path)) end
  l.box, l.loop = box, t._loop
  l.path, l.ino = path, core.socket_file(path)  -- removed again by close
  srv._listeners[1] = l
  return srv
end

-- start_unix_server(client_cb, path, [opts]) -> awaitable: a Server.
function M.start_unix_server(cb, path, opts)
  argcheck(type(cb) == "function", 1, "start_unix_server", typeerror("function", cb))
  argcheck(type(path) == "string", 2, "start_unix_server", typeerror("string", path))
  checknul(path, 2, "start_unix_server")
  opts = checkopts(opts, 3, "start_unix_server", "server")
  return op(start_unix_impl, cb, path, opts)
end

-- A stream collected open (stream.c's finalizer): report it to its loop's
-- exception handler, on the loop, or to stderr if that loop is gone.
core.io_config(function(listener)
  local loop = rt.loop
  local ctx = {message = listener and "unclosed server socket" or "unclosed stream"}
  if loop and not loop._core:is_closed() then
    loop._core:call_soon(function() loop:call_exception_handler(ctx) end)
  else
    rt.default_exception_handler(nil, ctx)
  end
end)

M.name_ops{[wait_closed_impl] = "writer:wait_closed()", [getaddrinfo_impl] = "asyncio.getaddrinfo(...)",
  [getnameinfo_impl] = "asyncio.getnameinfo(...)", [start_tls_impl] = "writer:start_tls(...)",
  [open_connection_impl] = "asyncio.open_connection(...)",
  [open_unix_impl] = "asyncio.open_unix_connection(...)", [serve_forever_impl] = "server:serve_forever()",
  [wait_server_closed_impl] = "server:wait_closed()",
  [start_server_impl] = "asyncio.start_server(...)", [start_unix_impl] = "asyncio.start_unix_server(...)",
  -- (reads are reported in debug mode only: see reader_op)
  [read_impl] = "reader:read(...)", [readexactly_impl] = "reader:readexactly(...)",
  [readuntil_impl] = "reader:readuntil(...)", [readline_impl] = "reader:readline()"}

return M
