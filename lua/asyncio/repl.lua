-- repl.lua: a Lua prompt inside a running event loop.
--
--   lua5.4 -l asyncio.repl          (or: make repl-async)
--
-- Each line runs as a task of the loop, so await(...) works at top level,
-- and tasks started at the prompt go on running between lines (stdin is
-- read on the thread pool). Top-level 'local' declarations persist (they
-- become variables of the REPL's environment), an expression prints its
-- values, Ctrl-C cancels the line being run, Ctrl-D (end of input) closes
-- the loop cleanly and exits. From a pipe it reads the same way, without
-- prompts, so it can be scripted.

local asyncio = require "asyncio"
local core = require "asyncio.core"
local streams = require "asyncio.streams"

local await, pack, unpack = asyncio.await, table.pack, table.unpack
local describe = require("asyncio.util").describe

local M = {}

local READ = 2  -- files.lua's code for a read (fs.c OP_READ)

-- Top-level 'local' declarations become assignments to the environment,
-- so that the next line still sees them. Attributes (<const>, <close>)
-- have no meaning across lines and are dropped.
local function unlocal(src)
  local rest = src:match("^%s*local%s+function%s+(.*)$")
  if rest then return "function " .. rest end
  local names, tail = src:match("^%s*local%s+([%w_,%s<>]-)%s*(=.*)$")
  if names then return (names:gsub("%s*<%a+>", "")) .. " " .. tail end
  names = src:match("^%s*local%s+([%w_,%s<>]+)$")
  if names then
    names = names:gsub("%s*<%a+>", "")
    local nils = names:gsub("[%w_]+", "nil")
    return names .. " = " .. nils
  end
  return src
end
M.unlocal = unlocal

-- Compile 'src': as an expression first (its values are printed), then as
-- statements. Returns the function, or nil and the message, and whether
-- the source is incomplete (more lines may finish it).
local function compile(src, env)
  -- an expression's values are packed inside the chunk: 'return f(x)'
  -- would be a tail call, and an error in f would lose the line it came from
  local fn = load("return _ENV.__repl_pack(" .. src .. "\n)", "=stdin", "t", env)
  if fn then return fn end
  local msg
  fn, msg = load(unlocal(src), "=stdin", "t", env)
  if fn then return fn end
  return nil, msg, msg:find("<eof>$") ~= nil
end
M.compile = compile

-- Lines of stdin, read on the thread pool: the loop runs on meanwhile.
local function line_reader()
  local buf, eof = "", false
  return function()
    while true do
      local i = buf:find("\n", 1, true)
      if i then
        local line = buf:sub(1, i - 1)
        buf = buf:sub(i + 1)
        return line
      end
      if eof then
        if buf == "" then return nil end
        local rest = buf
        buf = ""
        return rest
      end
      local t = asyncio.current_task()
      local req, name, msg = core.fs(t._loop._core, READ, 0, 4096, -1)
      if not req then error(("stdin: %s"):format(msg or name), 0) end
      local data = streams.await_request(t, "read stdin", req)
      if data == "" then eof = true else buf = buf .. data end
    end
  end
end

local function show(...)
  local n = select("#", ...)
  if n == 0 then return end
  local parts = pack(...)
  for i = 1, n do parts[i] = describe(parts[i]) end
  print(table.concat(parts, "\t", 1, n))
end

-- The REPL's main task. 'state.running' is the task of the line being
-- run (Ctrl-C cancels it); 'state.pending' the lines of an unfinished chunk.
local PACKED = {}  -- a key that marks the values of an expression line

local function session(state, interactive)
  local env = setmetatable({asyncio = asyncio, await = await}, {__index = _G})
  rawset(env, "__repl_pack", function(...)  -- see compile
    local t = pack(...)
    t[PACKED] = true
    return t
  end)
  local next_line = line_reader()
  if interactive then
    io.write(("lua-asyncio REPL on %s: await(...) works here; tasks run between lines.\n")
      :format(_VERSION))
    io.write("Ctrl-C cancels the line being run; Ctrl-D quits.\n")
  end
  while true do
    if interactive then
      io.write(state.pending and ">> " or "> ")
      io.flush()
    end
    local line = next_line()
    if line == nil then
      if state.pending then  -- the input ended inside a chunk
        local _, msg = compile(state.pending, env)
        io.stderr:write(msg, "\n")
      end
      if interactive then io.write("\n") end
      return
    end
    if state.interrupted then state.interrupted, state.pending = false, nil end
    local src = state.pending and (state.pending .. "\n" .. line) or line
    local fn, msg, incomplete = compile(src, env)
    if not fn and incomplete then
      state.pending = src
    else
      state.pending = nil
      if not fn then
        io.stderr:write(msg, "\n")
      else
        local t = asyncio.create_task(function()
          local res = pack(fn())
          if res.n == 1 and type(res[1]) == "table" and rawget(res[1], PACKED) then return res[1] end
          return res
        end)
        t:set_name("stdin")
        -- the session waits for the line's end, or for M.run to give up on
        -- a line that caught its cancellation and waits again (the gate)
        local gate = asyncio.get_running_loop():create_future()
        t:add_done_callback(function() if not gate:done() then gate:set_result() end end)
        state.running, state.gate = t, gate
        await(gate)
        state.running, state.gate = nil, nil
        local ok, res = pcall(t.result, t)
        if not t:done() then
          io.stderr:write("asyncio.repl: the line caught its cancellation and waits again for " ..
            "what nothing can complete: left behind (its task stays pending)\n")
        elseif ok then show(unpack(res, 1, res.n))
        elseif asyncio.CancelledError:is(res) and state.cancelled == "stuck" then
          io.stderr:write("asyncio.repl: the line waits for something that no task, timer or " ..
            "I/O can complete: cancelled\n")
        elseif asyncio.CancelledError:is(res) and state.cancelled then
          io.stderr:write("KeyboardInterrupt: the line was cancelled\n")
        else
          io.stderr:write(describe(res), "\n")
        end
        state.cancelled = false
      end
    end
    io.stdout:flush()
  end
end

-- Run the REPL until end of input; returns when the loop is closed. The
-- loop watches Ctrl-C itself (a line that computes without awaiting is
-- stopped with KeyboardInterrupt too); each Ctrl-C returns here, to
-- cancel the line being run or drop what was typed.
function M.run()
  local interactive = core.guess_handle(0) == "tty"
  local loop = asyncio.new_event_loop()
  local state = {}
  local main = loop:create_task(session, state, interactive)
  local ok, err = true, nil
  local rt = require "asyncio.runtime"
  rt.repl = true  -- asyncio.run at the prompt says to await instead
  while not main:done() do
    local run_ok, status = pcall(loop._run_until, loop, main, true)
    if not run_ok then ok, err = false, status; break end
    if status == "interrupted" then
      if state.running then
        if not state.running:done() then  -- a line that awaits: cancel it
          state.cancelled = true
          state.running:cancel()
        end
      else  -- at the prompt: drop what was typed, as lua.c does
        state.interrupted = true
        if interactive then io.write("\n> "); io.flush() end
      end
    elseif status == "idle" and state.running and not state.running:done() then
      -- the line waits for what nothing can complete (asyncio.run would
      -- raise its deadlock error): cancel the line, not the session; if it
      -- caught that and waits again, the session goes on without it
      if state.cancelled == "stuck" then state.gate:set_result()
      else
        state.cancelled = "stuck"
        state.running:cancel()
      end
    elseif status == "idle" then
      ok, err = false, "asyncio.repl: nothing left to run"
      break
    end
  end
  if ok then ok, err = pcall(main.result, main) end
  pcall(loop._cancel_all, loop, false, true)  -- what was left running
  rt.repl = false
  loop:close()
  if not ok then io.stderr:write(describe(err), "\n") end
  return ok
end

-- Loaded with 'lua5.4 -l asyncio.repl' (or required): run, then exit, so
-- that lua5.4 does not go on to read stdin itself.
if (...) == "asyncio.repl" then
  local ok = M.run()
  io.stdout:flush()
  os.exit(ok and 0 or 1, true)
end

return M
