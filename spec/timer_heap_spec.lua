-- The timer heap (src/timer.c) tested in C: ids must never be negative
-- (callers read that as "no timer"), also after a slot's generation wraps
-- (a slot reused 2^31 times: about 2.5 days of 10 k timers a second, since
-- freed slots are reused first). spec/c/timer_ids.c sets the generation
-- near the wrap instead of arming 2^31 timers.
describe("the timer heap", function()
  it("keeps ids non-negative and timers cancellable across a generation wrap", function()
    local exe = os.tmpname()
    local cc = ("cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic " ..
      "$(pkg-config --cflags lua5.4 libuv) -o %s spec/c/timer_ids.c src/timer.c 2>&1"):format(exe)
    local p = assert(io.popen(cc))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    p = assert(io.popen(exe))
    out = p:read("a")
    local ok = p:close()
    os.remove(exe)
    assert.is_nil(out:find("FAIL", 1, true), out)
    assert.is_true(ok, out)
    assert.matches("ok the last one fires", out)
  end)
end)
