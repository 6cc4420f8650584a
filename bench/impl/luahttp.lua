-- bench/impl/luahttp.lua W9 PORT: lua-http's server (on cqueues) answering
-- "Hello, World!" with keep-alive, until killed. Debian 12 packages
-- lua-http with every dependency for Lua 5.1 only, so this peer runs on
-- lua5.1 (make bench installs it).
local http_server = require "http.server"
local headers = require "http.headers"

local name, port = ...
if name ~= "W9" or not tonumber(port) then
  io.stderr:write("usage: lua5.1 bench/impl/luahttp.lua W9 PORT\n")
  os.exit(2)
end

local srv = assert(http_server.listen {
  host = "127.0.0.1", port = tonumber(port), reuseaddr = true,
  onstream = function(_, stream)
    assert(stream:get_headers())
    local h = headers.new()
    h:append(":status", "200")
    h:append("content-type", "text/plain")
    h:append("content-length", "13")
    stream:write_headers(h, false)
    stream:write_chunk("Hello, World!", true)
  end,
})
assert(srv:listen())
print("listening")
io.stdout:flush()
assert(srv:loop())
