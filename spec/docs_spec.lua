-- Every ```lua block of README.md and docs/api.md runs as written and prints
-- what its `-->` comments claim. docs/api.md's blocks run after the prelude
-- its first block states; a block whose first line starts with
-- `-- fragment:` (a busted spec, a config file, a sketch that needs files or
-- the network) is only listed, not run.
local support = require "spec.support"

local PRELUDE = 'local asyncio = require "asyncio"\nlocal await = asyncio.await\n'

-- The ```lua blocks of 'file', in order: {code = ..., line = ...}.
local function blocks_of(file)
  local text = assert(io.open(file)):read("a")
  local blocks, inside, line = {}, nil, 0
  for l in text:gmatch("([^\n]*)\n") do
    line = line + 1
    if inside then
      if l:match("^```") then
        blocks[#blocks + 1] = inside
        inside = nil
      else
        inside.code = inside.code .. l .. "\n"
      end
    elseif l:match("^```lua%s*$") then
      inside = {code = "", line = line}
    end
  end
  assert(inside == nil, file .. ": a ```lua block is not closed")
  return blocks
end

-- Tabs and runs of blanks to one space, no blanks at the ends.
local function normalize(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- The claims of a block, in order: what follows each `-->`, normalized,
-- without a trailing note in parentheses ("false true (the sleep was
-- cancelled)" claims "false true").
local function claims_of(code)
  local claims = {}
  for l in code:gmatch("[^\n]+") do
    local claim = l:match("%-%->(.*)$")
    if claim then
      claim = normalize(claim):gsub("%s+%b()$", "")
      claims[#claims + 1] = claim
    end
  end
  return claims
end

-- Each claim matches (exactly, normalized) an output line after the one
-- the claim before it matched.
local function check_claims(name, claims, out)
  local lines = {}
  for l in out:gmatch("([^\n]*)\n?") do lines[#lines + 1] = normalize(l) end
  local at = 0
  for i, claim in ipairs(claims) do
    local found
    for j = at + 1, #lines do
      if lines[j] == claim then found = j break end
    end
    assert(found, ("%s: claim %d (%q) is not printed (after output line %d); it printed:\n%s")
      :format(name, i, claim, at, out))
    at = found
  end
end

local function is_fragment(code)
  return code:match("^%-%- fragment:") ~= nil
end

describe("the ```lua blocks of", function()
  it("docs/api.md start with the prelude the others assume", function()
    local first = blocks_of("docs/api.md")[1]
    assert.equal(PRELUDE, first.code)
  end)

  for _, file in ipairs({"README.md", "docs/api.md"}) do
    local prelude = file == "docs/api.md" and PRELUDE or ""
    describe(file, function()
      local blocks = blocks_of(file)

      it("are there", function()
        assert.is_true(#blocks >= 5, file .. " has " .. #blocks .. " ```lua blocks")
      end)

      for n, block in ipairs(blocks) do
        local what = ("block %d (line %d)"):format(n, block.line)
        local name = file .. " " .. what
        if is_fragment(block.code) then
          it(what .. " is a fragment: " .. block.code:match("^%-%- fragment:%s*([^\n]*)"), function() end)
        else
          it(what .. " runs and prints what it claims", function()
            -- the prelude on the block's first line keeps the block's own
            -- line numbers in error messages
            local src = prelude:gsub("\n", " ") .. block.code
            local out, status = support.lua_run(src, "timeout 60 env ")
            assert(status == 0, ("%s: exit status %s; it printed:\n%s"):format(name, status, out))
            check_claims(name, claims_of(block.code), out)
          end)
        end
      end
    end)
  end
end)
