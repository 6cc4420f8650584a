-- Files and the file system (files.lua, fs.c) on libuv's thread pool.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local run = support.run

local function tmpdir()
  local out = support.sh("mktemp -d")
  return (out:gsub("%s+$", ""))
end

describe("files", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("write, then read back in pieces, lines and all at once", function()
    local res = run(function()
      local path = dir .. "/a.txt"
      local f <close> = await(asyncio.open_file(path, "w"))
      assert.equal(14, await(f:write("one\ntwo\nthree\n")))
      await(f:write("tail"))
      await(f:close())
      local g <close> = await(asyncio.open_file(path))
      local first = await(g:read(4))
      local lines = {}
      for line in g:lines() do lines[#lines + 1] = line end
      await(g:seek("set", 0))
      local all = await(g:read())
      return {first = first, lines = lines, all = all, eof = await(g:read(5))}
    end)
    assert.equal("one\n", res.first)
    assert.same({"two", "three", "tail"}, res.lines)
    assert.equal("one\ntwo\nthree\ntail", res.all)
    assert.equal("", res.eof)
  end)

  it("read takes io's formats: \"a\", \"l\" and \"L\" (nil at the end), and says what it takes", function()
    local res = run(function()
      local path = dir .. "/f.txt"
      local f <close> = await(asyncio.open_file(path, "w"))
      await(f:write("one\ntwo\n\nlast"))
      await(f:close())
      local g <close> = await(asyncio.open_file(path))
      local r = {await(g:read("l")), await(g:read("L")), await(g:read("*l")), await(g:read(2)),
                 await(g:read("a")), await(g:read("a")), n = 0}
      r.eof_line = await(g:read("l"))
      await(g:seek("set", 0))
      r.all = await(g:read("*a"))
      local ok, e = pcall(g.read, g, "n")
      r.err = not ok and e
      return r
    end)
    assert.same({"one", "two\n", "", "la", "st", ""}, {res[1], res[2], res[3], res[4], res[5], res[6]})
    assert.is_nil(res.eof_line)
    assert.equal("one\ntwo\n\nlast", res.all)
    assert.matches([[bad argument #2 to 'read' (integer or format "a", "l" or "L" expected, got string)]],
      res.err, 1, true)
  end)

  it("append mode, r+ and seek from the end", function()
    local res = run(function()
      local path = dir .. "/b.txt"
      local f = await(asyncio.open_file(path, "a"))
      await(f:write("abc"))
      await(f:write("def"))
      await(f:close())
      local g = await(asyncio.open_file(path, "r+"))
      assert.equal(4, await(g:seek("end", -2)))
      await(g:write("XY"))
      assert.equal(2, await(g:seek("set", 2)))
      local mid = await(g:read(2))
      await(g:close())
      await(g:close())  -- twice is fine
      local h <close> = await(asyncio.open_file(path))
      return {mid = mid, all = await(h:read())}
    end)
    assert.same({mid = "cd", all = "abcdXY"}, res)
  end)

  it("in an append mode a write leaves the position at the end, as io's (review)", function()
    local res = run(function()
      local path = dir .. "/ap.txt"
      local f = await(asyncio.open_file(path, "w"))
      await(f:write("xyz"))
      await(f:close())
      local g <close> = await(asyncio.open_file(path, "a+"))
      local r = {first = await(g:read(2))}  -- a+ reads from the start
      await(g:write("abc"))
      r.after_write = await(g:read())       -- at the end: nothing
      r.pos = await(g:seek("cur"))
      await(g:write("def"))
      r.pos2 = await(g:seek("cur", -2))
      r.tail = await(g:read())
      await(g:seek("set", 0))
      r.all = await(g:read())
      return r
    end)
    assert.same({first = "xy", after_write = "", pos = 6, pos2 = 7, tail = "ef", all = "xyzabcdef"},
      res)
  end)

  it("a read cancelled in the pool leaves the position where the next read expects it", function()
    local res = run(function()
      local path = dir .. "/c.bin"
      local f <close> = await(asyncio.open_file(path, "w"))
      await(f:write(("0123456789"):rep(100000)))
      await(f:flush())
      local g <close> = await(asyncio.open_file(path))
      assert.equal("0123", await(g:read(4)))
      local t = asyncio.create_task(function() return await(g:read(500000)) end)
      await(asyncio.sleep(0))
      t:cancel()
      pcall(await, t)
      return await(g:read(6))
    end)
    assert.equal("456789", res)
  end)

  it("reads after a write see the write (the read-ahead is dropped)", function()
    local got = run(function()
      local path = dir .. "/ra.txt"
      local f <close> = await(asyncio.open_file(path, "w+"))
      await(f:write("aaaabbbbcccc"))
      await(f:seek("set", 0))
      local first = await(f:read(4))       -- the next 4 are read ahead
      await(f:write("XXXX"))               -- over "bbbb", at the position
      await(f:seek("set", 4))
      return {first, await(f:read(4)), await(f:read(4)), await(f:read(4))}
    end)
    assert.same({"aaaa", "XXXX", "cccc", ""}, got)
  end)

  it("the file system: mkdir, stat, scandir, readdir, rename, unlink, rmdir", function()
    local res = run(function()
      local fs = asyncio.fs
      await(fs.mkdir(dir .. "/sub"))
      local f <close> = await(asyncio.open_file(dir .. "/sub/x", "w"))
      await(f:write("12345"))
      local before = await(fs.stat(dir .. "/sub/x")).size  -- gathered, not yet written
      await(f:flush())
      local st = await(fs.stat(dir .. "/sub/x"))
      local dst = await(fs.stat(dir .. "/sub"))
      await(fs.rename(dir .. "/sub/x", dir .. "/sub/y"))
      local names = await(fs.readdir(dir .. "/sub"))
      local entries = await(fs.scandir(dir))
      await(fs.unlink(dir .. "/sub/y"))
      await(fs.rmdir(dir .. "/sub"))
      local ok, e = pcall(await, fs.stat(dir .. "/sub"))
      return {before = before, size = st.size, type = st.type, dtype = dst.type, names = names,
              entry = entries[1], ok = ok, err = e}
    end)
    assert.equal(0, res.before)
    assert.equal(5, res.size)
    assert.equal("file", res.type)
    assert.equal("directory", res.dtype)
    assert.same({"y"}, res.names)
    assert.same({name = "sub", type = "directory"}, res.entry)
    assert.is_false(res.ok)
    assert.is_true(asyncio.FileNotFoundError:is(res.err))
  end)

  it("copies 5 MB in odd-sized reads and writes byte for byte (reads and writes are buffered)", function()
    local res = run(function()
      local src, dst = dir .. "/src.bin", dir .. "/dst.bin"
      local parts = {}
      for i = 1, 5 * 1024 do parts[i] = ("%04d"):format(i % 10000):rep(256) end  -- 1 KiB each
      local want = table.concat(parts)
      local f <close> = await(asyncio.open_file(src, "w"))
      await(f:write(want))
      await(f:close())
      local a <close> = await(asyncio.open_file(src))
      local b <close> = await(asyncio.open_file(dst, "w"))
      local sizes = {70000, 65536, 1, 3 * 1024 * 1024}  -- the last more than one buffer
      local i = 0
      while true do
        i = i % #sizes + 1
        local chunk = await(a:read(sizes[i]))
        if chunk == "" then break end
        await(b:write(chunk))
      end
      await(b:close())
      local c <close> = await(asyncio.open_file(dst))
      local got = await(c:read())
      return {same = got == want, n = #got}
    end)
    assert.equal(5 * 1024 * 1024, res.n)
    assert.is_true(res.same)
  end)

  it("a <close> variable writes what was gathered before it closes", function()
    local got = run(function()
      local path = dir .. "/closed.txt"
      do
        local f <close> = await(asyncio.open_file(path, "w"))
        await(f:write("written "))
        await(f:write("at close"))
      end
      local g <close> = await(asyncio.open_file(path))
      return await(g:read())
    end)
    assert.equal("written at close", got)
  end)

  it("a failed write raises its error from the next flush", function()
    local res = run(function()
      local g = await(asyncio.open_file("/dev/full", "w"))  -- writes fail: ENOSPC
      local n = await(g:write("x"))                  -- gathered
      local ok, err = pcall(await, g:flush())
      local ok2 = pcall(await, g:flush())            -- reported once
      await(g:close())
      return {n = n, ok = ok, err = err, ok2 = ok2}
    end)
    assert.equal(1, res.n)
    assert.is_false(res.ok)
    assert.is_true(asyncio.OSError:is(res.err))
    assert.equal("ENOSPC", res.err.errno)
    assert.is_true(res.ok2)
  end)

  it("1,000 files opened and closed leave the descriptors where they were", function()
    local before, after = run(function()
      local fds = support.fd_count()
      for i = 1, 1000 do
        local f <close> = await(asyncio.open_file(dir .. "/f" .. (i % 10), "w"))
        await(f:write("x"))
        await(f:close())
      end
      return fds, support.fd_count()
    end)
    assert.equal(before, after)
  end)

  it("errors: a missing file, a directory that is not empty, bad arguments", function()
    run(function()
      local ok, e = pcall(await, asyncio.open_file(dir .. "/none"))
      assert.is_false(ok)
      assert.equal("ENOENT", e.errno)
      assert.matches("open " .. dir .. "/none", tostring(e), 1, true)
      await(asyncio.fs.mkdir(dir .. "/d"))
      local f = await(asyncio.open_file(dir .. "/d/x", "w"))
      await(f:close())
      local ok2, e2 = pcall(await, asyncio.fs.rmdir(dir .. "/d"))
      assert.is_false(ok2)
      assert.equal("ENOTEMPTY", e2.errno)
      for _, bad in ipairs({"q", "r+b+", "rb+b", "rbb", "++r", "r++", "", "rw", "r\0"}) do
        assert.has_error(function() asyncio.open_file(dir .. "/x", bad) end,
          "bad argument #2 to 'open_file' (invalid mode)")
      end
      for _, good in ipairs({"r", "rb", "r+", "r+b", "rb+"}) do
        local g = await(asyncio.open_file(dir .. "/d/x", good))
        await(g:close())
      end
      assert.has_error(function() f:read(1) end, "read: the file is closed")
      assert.has_error(function() asyncio.fs.stat(42) end,
        "bad argument #1 to 'stat' (string expected, got number)")
    end)
  end)
end)
