-- types/asyncio.lua, the LuaCATS definitions lua-language-server reads
-- (issue 19, item 16), kept complete: every public function of the module
-- and every public method of its objects has an annotated definition there,
-- nothing is annotated that does not exist, and each options class names
-- only options its function knows. lua-language-server itself is not
-- installable here, so the file is parsed with string patterns.

local asyncio = require "asyncio"
local await = asyncio.await

local PATH = "types/asyncio.lua"

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- The definitions -----------------------------------------------------------

-- What the file defines: classes by name, each with its parents, its
-- ---@field names, its functions (name -> {sep, params, doc, line}) and the
-- Lua expression it is bound to ("asyncio.EventLoop", "Handle", ...).
-- A class is bound to the table assigned right under its ---@class block;
-- a function belongs to the class bound to its table.
local function parse(text)
  local classes, by_expr, stray = {}, {}, {}
  local doc, lineno = {}, 0
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    lineno = lineno + 1
    if line:match("^%-%-%-") then
      doc[#doc + 1] = line
    else
      local class  -- the class declared by this block, if any
      for _, d in ipairs(doc) do
        local spec = d:match("^%-%-%-@class%s+(.*)$")
        if spec then
          spec = spec:gsub("^%(%w+%)%s*", "")
          local name, rest = spec:match("^([%w_.]+)(.*)$")
          rest = rest:gsub("^%b<>", "")
          class = {name = name, parents = {}, fields = {}, functions = {}, line = lineno}
          for parent in (rest:match("^%s*:%s*(.*)$") or ""):gsub("%b<>", ""):gmatch("[%w_.]+") do
            class.parents[#class.parents + 1] = parent
          end
          classes[name] = class
        end
        local field = d:match("^%-%-%-@field%s+([%w_]+)")
        if field and class then class.fields[field] = true end
      end
      local expr = line:match("^local%s+([%w_]+)%s*=") or line:match("^([%w_.]+)%s*=")
      if class and expr then
        class.expr = expr
        by_expr[expr] = class
      end
      local owner, sep, name, params = line:match("^function%s+([%w_.]+)([.:])([%w_]+)%s*%((.-)%)")
      if owner then
        local rec = {sep = sep, name = name, doc = doc, line = lineno, params = {}}
        for p in params:gmatch("[^,%s]+") do rec.params[#rec.params + 1] = p end
        local cls = by_expr[owner]
        if cls then cls.functions[name] = rec
        else stray[#stray + 1] = ("%s:%d: function %s%s%s: its table is not a ---@class"):format(
          PATH, lineno, owner, sep, name) end
      end
      doc = {}
    end
  end
  return {classes = classes, by_expr = by_expr, stray = stray}
end

-- Is 'rec' annotated: a doc comment right above it, with a ---@param for
-- each of its parameters and none for a parameter it does not have?
-- Returns nil, or what is wrong.
local function annotation_problem(rec)
  if #rec.doc == 0 then return "no annotation" end
  local documented = {}
  for _, d in ipairs(rec.doc) do
    local p = d:match("^%-%-%-@param%s+([%w_.]+)")
    if p then documented[p] = true end
  end
  local problems = {}
  for _, p in ipairs(rec.params) do
    if not documented[p] then problems[#problems + 1] = "no ---@param " .. p end
    documented[p] = nil
  end
  for p in pairs(documented) do problems[#problems + 1] = "---@param " .. p .. " is not a parameter" end
  table.sort(problems)
  if #problems > 0 then return table.concat(problems, ", ") end
end

-- The function 'name' of class 'cname' or of a class above it.
local function lookup(defs, cname, name, what)
  local seen = {}
  local function walk(c)
    local class = defs.classes[c]
    if class == nil or seen[c] then return nil end
    seen[c] = true
    local found = class[what][name]
    if found then return found end
    for _, p in ipairs(class.parents) do
      found = walk(p)
      if found then return found end
    end
  end
  return walk(cname)
end

-- The runtime -----------------------------------------------------------------

-- The public functions and fields of 'x': its own (a table's) and what its
-- metatables' __index tables (or, with an __index function, the metatable
-- itself) give, names not starting with "_".
local function public_members(x)
  local functions, fields, seen = {}, {}, {}
  local function scan(t)
    if seen[t] then return end
    seen[t] = true
    if type(t) == "table" then
      for k, v in pairs(t) do
        if type(k) == "string" and not k:find("^_") then
          if type(v) == "function" then functions[k] = true
          elseif fields[k] == nil and functions[k] == nil then fields[k] = true end
        end
      end
    end
    local mt = debug.getmetatable(t)
    if type(mt) ~= "table" then return end
    local index = rawget(mt, "__index")
    if type(index) == "table" then scan(index)
    elseif type(index) == "function" then scan(mt) end
  end
  scan(x)
  for k in pairs(functions) do fields[k] = nil end
  return functions, fields
end

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- Fields of an object that are the library's bookkeeping, not API.
local NOT_API = {
  ["asyncio.Handle"] = {n = true},  -- the count of the callback's arguments (util.pack)
  ["asyncio.TimerHandle"] = {n = true},
}

-- Everything the definitions miss or get wrong, as a sorted list of lines:
-- 'samples' maps class names to real objects of that class.
local function check(text, samples)
  local defs = parse(text)
  local problems, said = {}, {}
  local function problem(fmt, ...)
    local line = fmt:format(...)
    if said[line] then return end  -- the class table and its objects miss the same
    said[line] = true
    problems[#problems + 1] = line
  end
  for _, s in ipairs(defs.stray) do problem("%s", s) end

  -- a public function 'name' of 'label' (class 'cname') is annotated
  local function need_function(cname, label, name, sep)
    local rec = lookup(defs, cname, name, "functions")
    if rec == nil then
      problem("%s%s%s: no annotated function in %s", label, sep, name, PATH)
      return
    end
    local why = annotation_problem(rec)
    if why then problem("%s%s%s (%s:%d): %s", label, sep, name, PATH, rec.line, why) end
  end
  local function need_field(cname, label, name)
    if not lookup(defs, cname, name, "fields") and not (NOT_API[cname] or {})[name] then
      problem("%s.%s: no ---@field %s in class %s", label, name, name, cname)
    end
  end

  -- the module, and each table in it, by the class its expression is bound to
  local seen = {}
  local function walk(value, expr)
    if seen[value] then return end
    seen[value] = true
    local class = defs.by_expr[expr]
    if class == nil then
      problem("%s: not declared in %s (a ---@class bound to it)", expr, PATH)
      return
    end
    for k, v in pairs(value) do
      if type(k) == "string" and (not k:find("^_") or (value == asyncio and k == "_VERSION")) then
        local sub = expr .. "." .. k
        if type(v) == "function" then
          need_function(class.name, expr, k, value == asyncio and "." or ":")
        elseif type(v) == "table" then
          -- a table of its own class (fs, EventLoop, ...), unless it is a
          -- plain ---@field (none so far)
          if defs.by_expr[sub] or not lookup(defs, class.name, k, "fields") then walk(v, sub) end
        else
          need_field(class.name, expr, k)
        end
      end
    end
  end
  walk(asyncio, "asyncio")

  -- the objects
  for _, cname in ipairs(sorted_keys(samples)) do
    if defs.classes[cname] == nil then
      problem("%s: no ---@class %s in %s", cname, cname, PATH)
    else
      for _, obj in ipairs(samples[cname]) do
        local functions, fields = public_members(obj)
        for _, name in ipairs(sorted_keys(functions)) do need_function(cname, cname, name, ":") end
        for _, name in ipairs(sorted_keys(fields)) do need_field(cname, cname, name) end
      end
    end
  end

  -- nothing annotated that is not there (a typo would hide the real name)
  local function resolve(expr)
    local v = asyncio
    for part in expr:gsub("^asyncio%.?", ""):gmatch("[^.]+") do
      if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
      v = v[part]
    end
    return v
  end
  for _, cname in ipairs(sorted_keys(defs.classes)) do
    local class = defs.classes[cname]
    if next(class.functions) then
      local holders = {}
      if class.expr and class.expr:find("^asyncio") then holders[1] = resolve(class.expr) end
      for _, obj in ipairs(samples[cname] or {}) do holders[#holders + 1] = obj end
      if #holders == 0 then
        problem("%s (%s:%d): nothing real to check its functions against (add a sample to %s)",
          cname, PATH, class.line, "spec/types_spec.lua")
      end
      for _, name in ipairs(sorted_keys(class.functions)) do
        for _, h in ipairs(holders) do
          local ok, v = pcall(function() return h[name] end)
          if not ok or type(v) ~= "function" then
            problem("%s%s%s (%s:%d): annotated, but there is no such function", class.expr or cname,
              class.functions[name].sep, name, PATH, class.functions[name].line)
            break
          end
        end
      end
    end
  end

  table.sort(problems)
  return problems, defs
end

-- The samples -------------------------------------------------------------------

-- Real objects of each class, made on a loop (and closed again); and, per
-- options class, whether each key it names is accepted (probes below).
local samples, option_results = {}, {}

local function add(cname, obj)
  samples[cname] = samples[cname] or {}
  table.insert(samples[cname], obj)
end

-- For each options class: a call that checks an options table at once
-- ('env': a writer and a context for start_tls, and a future already done
-- to give create_task and gather, so that nothing is left unawaited).
local PROBES = {
  ["asyncio.LoopOptions"] = function(o) asyncio.new_event_loop(o):close() end,
  ["asyncio.TaskOptions"] = function(o, env) asyncio.create_task(env.done, o) end,
  ["asyncio.GatherOptions"] = function(o, env) asyncio.gather({env.done}, o):result() end,
  ["asyncio.WaitOptions"] = function(o) asyncio.wait({}, o) end,
  ["asyncio.AsCompletedOptions"] = function(o) asyncio.as_completed({}, o) end,
  ["asyncio.OpenConnectionOptions"] = function(o) return asyncio.open_connection("127.0.0.1", 1, o) end,
  ["asyncio.OpenUnixConnectionOptions"] = function(o) return asyncio.open_unix_connection("/nonexistent", o) end,
  ["asyncio.StartServerOptions"] = function(o) return asyncio.start_server(print, "127.0.0.1", 0, o) end,
  ["asyncio.StartUnixServerOptions"] = function(o) return asyncio.start_unix_server(print, "/nonexistent", o) end,
  ["asyncio.StartTLSOptions"] = function(o, env) return env.writer:start_tls(env.ctx, o) end,
  ["asyncio.GetaddrinfoOptions"] = function(o) return asyncio.getaddrinfo("localhost", 80, o) end,
  ["asyncio.SSLContextOptions"] = function(o) asyncio.ssl_context(o) end,
  ["asyncio.OpenUDPOptions"] = function(o) return asyncio.open_udp(o) end,
  ["asyncio.SubprocessOptions"] = function(o) return asyncio.create_subprocess_shell("true", o) end,
  ["asyncio.WorkerPoolOptions"] = function(o) asyncio.worker_pool(o):close() end,
  ["asyncio.ClusterOptions"] = function(o) asyncio.cluster.run(o) end,
}

-- Run probe 'fn' with {[key] = false}: is the key refused as unknown?
local function refused(fn, key, env)
  local ok, err = pcall(fn, {[key] = false}, env)
  if ok and type(err) == "table" and err ~= env.done then
    asyncio.create_task(err):cancel()  -- taken: let go of unrun, not reported as never awaited
  end
  return not ok and tostring(err):find("unknown option '" .. key .. "'", 1, true) ~= nil
end

local function probe_options(defs, env)
  for cname, class in pairs(defs.classes) do
    local fn = PROBES[cname]
    local r = {probe = fn ~= nil, accepted = {}, refused = {}, exact = false}
    if fn then
      r.bogus_refused = refused(fn, "no_such_option", env)
      for key in pairs(class.fields) do
        if refused(fn, key, env) then r.refused[#r.refused + 1] = key
        else r.accepted[#r.accepted + 1] = key end
      end
      table.sort(r.refused)
      await(asyncio.sleep(0))  -- TLS contexts take a while: no slow step in debug mode
    end
    option_results[cname] = r
  end
end

local function collect(defs)
  asyncio.run(function()
    local loop = asyncio.get_running_loop()
    add("asyncio.EventLoop", loop)
    local h = loop:call_soon(function() end)
    add("asyncio.Handle", h)
    local th = loop:call_later(3600, function() end)
    add("asyncio.TimerHandle", th)
    th:cancel()
    add("asyncio.Future", asyncio.Future())
    add("asyncio.Future", loop:create_future())
    local t = asyncio.create_task(function() return 1 end)
    add("asyncio.Task", t)
    local g = asyncio.gather(t)
    g:add_done_callback(function() end)  -- looked at: not reported as never awaited
    add("asyncio.Future", g)
    local function nap() await(asyncio.sleep(0)) end
    add("asyncio.Future", asyncio.shield(asyncio.create_task(nap)))
    local coro = asyncio.async(function() end)()
    add("asyncio.Coroutine", coro)
    await(coro)
    await(asyncio.task_group(function(tg)
      add("asyncio.TaskGroup", tg)
      tg:create_task(nap)
    end))

    add("asyncio.Event", asyncio.Event())
    add("asyncio.Lock", asyncio.Lock())
    add("asyncio.Semaphore", asyncio.Semaphore(2))
    add("asyncio.BoundedSemaphore", asyncio.BoundedSemaphore(2))
    add("asyncio.Condition", asyncio.Condition())
    add("asyncio.Barrier", asyncio.Barrier(2))
    add("asyncio.Queue", asyncio.Queue())
    add("asyncio.LifoQueue", asyncio.LifoQueue(3))
    add("asyncio.PriorityQueue", asyncio.PriorityQueue(0, function(a, b) return a > b end))

    local server = await(asyncio.start_server(function() end, "127.0.0.1", 0))
    add("asyncio.Server", server)
    local sock = server:sockets()[1]
    add("asyncio.Socket", sock)
    local reader, writer = await(asyncio.open_connection("127.0.0.1", sock:getsockname()[2]))
    add("asyncio.StreamReader", reader)
    add("asyncio.StreamWriter", writer)
    local ctx = asyncio.ssl_context()
    add("asyncio.SSLContext", ctx)
    local done = asyncio.Future()
    done:set_result()
    probe_options(defs, {writer = writer, ctx = ctx, done = done})
    writer:close()
    await(writer:wait_closed())
    server:close()

    local p = await(asyncio.create_subprocess_exec("cat", {stdin = "pipe", stdout = "pipe",
      stderr = "pipe"}))
    add("asyncio.Process", p)
    await(p:communicate("x"))

    local ep <close> = await(asyncio.open_udp({local_addr = {"127.0.0.1", 0}}))
    add("asyncio.DatagramEndpoint", ep)
    local f <close> = await(asyncio.open_file(PATH))
    add("asyncio.File", f)

    add("asyncio.TimeoutError", asyncio.TimeoutError("too slow"))
    local ok, err = pcall(await, asyncio.open_connection("127.0.0.1", 1))
    assert(not ok and asyncio.OSError:is(err), tostring(err))
    add(("asyncio.%s"):format(err.name), err)
    local ok2, eg = pcall(await, asyncio.task_group(function() error("x") end))
    assert(not ok2 and asyncio.ExceptionGroup:is(eg), tostring(eg))
    add("asyncio.ExceptionGroup", eg)
  end)
end

-- The specs ---------------------------------------------------------------------

describe("types/asyncio.lua", function()
  local text, defs

  lazy_setup(function()
    text = readfile(PATH)
    defs = parse(text)
    collect(defs)
  end)

  it("is a meta file for require 'asyncio', and valid Lua that returns the module's table", function()
    assert.truthy(text:find("^%-%-%-@meta asyncio\n"), "the first line must be ---@meta asyncio")
    local chunk, err = load(text, "@" .. PATH, "t", {})
    assert(chunk, err)
    local m = chunk()
    assert.equal("table", type(m))
    assert.equal("function", type(m.run))
    assert.equal("function", type(m.StreamReader.readline))
  end)

  it("annotates every public function and method, and nothing that does not exist", function()
    local problems = check(text, samples)
    assert(#problems == 0, ("%d problem%s with %s:\n  %s"):format(#problems,
      #problems == 1 and "" or "s", PATH, table.concat(problems, "\n  ")))
  end)

  it("has a sample object for each class with methods", function()
    for _, cname in ipairs({"asyncio.EventLoop", "asyncio.Handle", "asyncio.TimerHandle",
        "asyncio.Future", "asyncio.Task", "asyncio.TaskGroup", "asyncio.Event", "asyncio.Lock",
        "asyncio.Semaphore", "asyncio.BoundedSemaphore", "asyncio.Condition", "asyncio.Barrier",
        "asyncio.Queue", "asyncio.StreamReader", "asyncio.StreamWriter", "asyncio.Server",
        "asyncio.Socket", "asyncio.Process", "asyncio.DatagramEndpoint", "asyncio.File",
        "asyncio.SSLContext"}) do
      assert(samples[cname] and #samples[cname] > 0, "no sample of " .. cname)
    end
  end)

  it("names only options that the functions know, in every options class", function()
    local problems = {}
    for _, cname in ipairs(sorted_keys(defs.classes)) do
      local is_options = cname:find("Options$") ~= nil
      local r = option_results[cname]
      if is_options and not r.probe then
        problems[#problems + 1] = cname .. ": no probe in spec/types_spec.lua's PROBES"
      elseif r.probe then
        if not r.bogus_refused then
          problems[#problems + 1] = cname .. ": its probe does not refuse an unknown option"
        end
        if #r.refused > 0 then
          problems[#problems + 1] = ("%s: unknown option%s %s"):format(cname,
            #r.refused == 1 and "" or "s", table.concat(r.refused, ", "))
        end
        if #r.accepted == 0 then problems[#problems + 1] = cname .. ": no ---@field" end
      end
    end
    assert(#problems == 0, table.concat(problems, "\n"))
  end)

  it("names what is missing when a function or method loses its annotation", function()
    -- the doc comment of sleep dropped, readline's definition dropped, a
    -- parameter of open_file left out, a method that does not exist added
    local broken = text:gsub("\n%-%-%- An awaitable that resumes.-\nfunction asyncio%.sleep",
      "\n\nfunction asyncio.sleep")
    broken = broken:gsub("\n[^\n]*\nfunction asyncio%.StreamReader:readline%(%) end", "")
    broken = broken:gsub("%-%-%-@param mode%? asyncio%.FileMode[^\n]*\n", "")
    broken = broken:gsub("\nreturn asyncio", "\n---@return integer\nfunction asyncio.Queue:size() end\n%0")
    local problems = check(broken, samples)
    local all = table.concat(problems, "\n")
    assert.truthy(all:find("asyncio.sleep %(types/asyncio.lua:%d+%): no annotation"), all)
    assert.truthy(all:find("asyncio.StreamReader:readline: no annotated function", 1, true), all)
    assert.truthy(all:find("asyncio.open_file %(types/asyncio.lua:%d+%): no %-%-%-@param mode"), all)
    assert.truthy(all:find("asyncio.Queue:size %(types/asyncio.lua:%d+%): annotated, but there is no such"),
      all)
    assert.equal(4, #problems, all)
  end)
end)
