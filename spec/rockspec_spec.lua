-- The rockspec installs offline into a tree (through the Makefile, which
-- finds libuv and OpenSSL with pkg-config), and a script runs against
-- that install alone (no checkout paths).
local support = require "spec.support"

describe("rockspec", function()
  it("installs with luarocks make into a tree that a script can use", function()
    local tmp = support.sh("mktemp -d"):gsub("%s+$", "")
    local cmd = table.concat({
      "set -e",
      "cp -r src lua rockspec Makefile docs examples types " .. tmp .. "/",
      "cd " .. tmp,
      "luarocks --lua-version 5.4 --tree " .. tmp .. "/tree make rockspec/lua-asyncio-scm-1.rockspec >/dev/null",
      "rm -rf src lua build",  -- only the install is left
      "ls tree/share/lua/5.4/asyncio",
      "cd /",
      "LUA_PATH='" .. tmp .. "/tree/share/lua/5.4/?.lua;" .. tmp .. "/tree/share/lua/5.4/?/init.lua' " ..
      "LUA_CPATH='" .. tmp .. "/tree/lib/lua/5.4/?.so' lua5.4 -e '" ..
      "local asyncio = require \"asyncio\"; " ..
      "print(package.searchpath(\"asyncio.core\", package.cpath)); " ..
      "print(\"installed\", asyncio.run(function() " ..
      "  local q = asyncio.Queue(1); asyncio.create_task(function() asyncio.await(q:put(41)) end); " ..
      "  return asyncio.await(q:get()) + 1 end))'",
    }, " && ")
    local out, code = support.sh("bash -c " .. ("%q"):format(cmd))
    support.sh("rm -rf " .. tmp)
    assert.equal(0, code, out)
    assert.matches("installed\t42", out)
    assert.matches(tmp .. "/tree/lib/lua/5.4/asyncio/core.so", out, 1, true)
    for path in io.popen("ls lua/asyncio/*.lua"):lines() do  -- every module is installed
      assert.matches("\n" .. path:match("[^/]+$") .. "\n", out, 1, true)
    end
  end)

  it("make dist makes a source rock that installs offline, docs, examples and types included", function()
    local tmp = support.sh("mktemp -d"):gsub("%s+$", "")
    local cmd = table.concat({
      "set -e",
      "git clone -q . " .. tmp .. "/clone",  -- what is committed, as a release is
      "make -s -C " .. tmp .. "/clone dist >/dev/null",
      "cd " .. tmp,
      "luarocks --lua-version 5.4 --tree " .. tmp .. "/tree install " ..
        "clone/build/dist/lua-asyncio-0.1.0-1.src.rock >/dev/null",
      "rm -rf clone",
      "ls tree/lib/luarocks/rocks-5.4/lua-asyncio/0.1.0-1/docs " ..
        "tree/lib/luarocks/rocks-5.4/lua-asyncio/0.1.0-1/examples " ..
        "tree/lib/luarocks/rocks-5.4/lua-asyncio/0.1.0-1/types",
      "cd /",
      "LUA_PATH='" .. tmp .. "/tree/share/lua/5.4/?.lua;" .. tmp .. "/tree/share/lua/5.4/?/init.lua' " ..
      "LUA_CPATH='" .. tmp .. "/tree/lib/lua/5.4/?.so' lua5.4 -e '" ..
      "local asyncio = require \"asyncio\"; print(asyncio._VERSION, asyncio.run(function() return 42 end))'",
    }, " && ")
    local out, code = support.sh("bash -c " .. ("%q"):format(cmd))
    support.sh("rm -rf " .. tmp)
    assert.equal(0, code, out)
    assert.matches("api%.md", out)
    assert.matches("producer_consumer%.lua", out)
    assert.matches("\nasyncio%.lua\n", out)  -- types/, for lua-language-server
    assert.matches("lua%-asyncio 0%.1%.0\t42", out)
  end)

  it("make uninstall removes the files make install put there, and nothing else", function()
    local tmp = support.sh("mktemp -d"):gsub("%s+$", "")
    local share = tmp .. "/usr/local/share/lua/5.4/asyncio"
    local out, code = support.sh(table.concat({
      "set -e",
      "make -s install DESTDIR=" .. tmp .. " >/dev/null",
      "touch " .. share .. "/someone_elses.lua",
      "make -s uninstall DESTDIR=" .. tmp .. " >/dev/null",
      "find " .. tmp .. " -type f",
    }, " && "))
    support.sh("rm -rf " .. tmp)
    assert.equal(0, code, out)
    assert.are.equal(share .. "/someone_elses.lua\n", out)
  end)

  it("both rockspecs pass luarocks lint, and need Lua 5.4 (not 5.5)", function()
    for _, r in ipairs({"rockspec/lua-asyncio-scm-1.rockspec", "rockspec/lua-asyncio-0.1.0-1.rockspec"}) do
      local out, code = support.sh("luarocks --lua-version 5.4 lint " .. r)
      assert.equal(0, code, out)
      local text = assert(io.open(r)):read("a")
      assert.matches('"lua >= 5.4, < 5.5"', text, 1, true)
    end
  end)
end)
