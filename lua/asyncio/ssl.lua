-- ssl.lua: TLS contexts. asyncio.ssl_context{...} makes an SSLContext
-- (an OpenSSL SSL_CTX in tls.c) to pass as opts.ssl to open_connection,
-- start_server and StreamWriter:start_tls.

local core = require "asyncio.core"
local errors = require "asyncio.errors"
local util = require "asyncio.util"
local raise = util.raise

local argcheck, typeerror = util.argcheck, util.typeerror

local M = {}

local SSLContext = {__name = "asyncio.SSLContext"}
SSLContext.__index = SSLContext
M.SSLContext = SSLContext

function SSLContext:__tostring()
  return ("<asyncio.SSLContext %s%s>"):format(self.mode, self.verify and "" or ", no verification")
end

local MODES = {client = true, server = true}
local FIELDS = {mode = true, cafile = true, certfile = true, keyfile = true, verify = true,
                password = true}

-- A file the context reads: a missing or unreadable one is an OSError of
-- the right kind, before OpenSSL's vaguer reasons.
local function checkfile(path, key)
  argcheck(path == nil or type(path) == "string", 1, "ssl_context",
    ("%s must be a path (%s)"):format(key, typeerror("string", path)))
  util.checknul(path, 1, "ssl_context", key)
  if path == nil then return end
  local f, msg, code = io.open(path, "r")
  if not f then
    local name = code == 2 and "ENOENT" or code == 13 and "EACCES" or "EIO"
    raise(errors.oserror(name, msg, ("ssl_context %s"):format(key)))
  end
  f:close()
end

-- ssl_context([opts]) -> SSLContext. opts: mode ("client", the default,
-- or "server"), cafile (the CAs to trust; default: the system's),
-- certfile and keyfile (PEM; a server needs them; keyfile defaults to
-- certfile; password, for an encrypted one), verify (a client checks the
-- server's certificate and name,
-- default true; a server with verify = true requires a client
-- certificate signed by cafile, default false).
function M.ssl_context(opts)
  argcheck(opts == nil or type(opts) == "table", 1, "ssl_context", typeerror("table", opts))
  opts = opts or {}
  for k in pairs(opts) do
    argcheck(FIELDS[k], 1, "ssl_context", ("unknown option '%s'"):format(tostring(k)))
  end
  local mode = opts.mode or "client"
  argcheck(MODES[mode], 1, "ssl_context", "mode must be \"client\" or \"server\"")
  argcheck(opts.verify == nil or type(opts.verify) == "boolean", 1, "ssl_context",
    "verify must be a boolean")
  local verify = opts.verify
  if verify == nil then verify = mode == "client" end
  checkfile(opts.cafile, "cafile")
  checkfile(opts.certfile, "certfile")
  checkfile(opts.keyfile, "keyfile")
  argcheck(mode == "client" or opts.certfile, 1, "ssl_context", "a server needs certfile")
  argcheck(opts.keyfile == nil or opts.certfile, 1, "ssl_context", "keyfile needs certfile")
  argcheck(opts.password == nil or type(opts.password) == "string", 1, "ssl_context",
    ("password must be a string (%s)"):format(typeerror("string", opts.password)))
  util.checknul(opts.password, 1, "ssl_context", "password")
  argcheck(not (mode == "server" and verify) or opts.cafile, 1, "ssl_context",
    "a server that verifies clients needs cafile")
  local ctx, reason = core.ssl_context(mode == "server", opts.cafile, opts.certfile,
    opts.keyfile, verify, opts.password)
  if not ctx then raise(errors.SSLError(reason, {errno = "ESSL", reason = reason})) end
  return setmetatable({_ctx = ctx, mode = mode, verify = verify}, SSLContext)
end

local default_client

-- What opts.ssl names, checked for 'mode': an SSLContext, or true for the
-- default client context (system CAs, verification on); nil if no TLS.
function M.context_of(ssl, mode, n, fname)
  if ssl == nil or ssl == false then return nil end
  if ssl == true and mode == "client" then
    default_client = default_client or M.ssl_context()
    return default_client
  end
  argcheck(getmetatable(ssl) == SSLContext, n, fname,
    ("ssl must be an SSLContext%s (%s)"):format(mode == "client" and " or true" or "",
      typeerror("asyncio.SSLContext", ssl)))
  argcheck(ssl.mode == mode, n, fname, ("ssl must be a %s context (ssl_context{mode = \"%s\"})")
    :format(mode, mode))
  return ssl
end

return M
