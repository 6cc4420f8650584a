# lua-asyncio. `make demo` and `make test` do their own set-up (scripts/setup.sh).
LUA        ?= lua5.4
LUA_VER    ?= 5.4
PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VER)
LUA_SHARE  ?= $(PREFIX)/share/lua/$(LUA_VER)
LUA_INCDIR ?=
BUSTED     ?= busted
LUACHECK   ?= luacheck
VALGRIND   ?= valgrind

CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -Wall -Wextra -pedantic \
           $(if $(LUA_INCDIR),-I$(LUA_INCDIR)) \
           $(shell $(PKG_CONFIG) --cflags lua$(LUA_VER) libuv openssl 2>/dev/null)
LIBS    := $(shell $(PKG_CONFIG) --libs libuv openssl 2>/dev/null)
override LDFLAGS += -shared

SRC  := $(wildcard src/*.c)
LUAS := $(wildcard lua/asyncio/*.lua)
CORE := build/asyncio/core.so
ASAN_CORE := build/asan/asyncio/core.so
SANITIZE  := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
# the interpreter is not instrumented: preload the runtimes, run busted under lua5.4 itself
SAN_OPTS  := ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SAN_ENV   := $(SAN_OPTS) \
             LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)"
BUSTED54  := $(LUA) $$(command -v $(BUSTED)) --ignore-lua
RUN  := LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;"

.PHONY: all setup demo test repl repl-async install uninstall dist clean check lint asan gcstress memcheck soak fuzz allocfail bench bench-smoke bench-profile bench-scale

all: $(CORE)

$(CORE): $(SRC) src/asyncio.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(SRC) $(LIBS)

$(ASAN_CORE): $(SRC) src/asyncio.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SANITIZE) $(LDFLAGS) -o $@ $(SRC) $(LIBS)

setup:
	@sh scripts/setup.sh build

demo:
	@sh scripts/setup.sh demo
	@$(MAKE) --no-print-directory all
	$(RUN) $(LUA) examples/producer_consumer.lua -p 3 -c 5 --scale 0.05

test:
	@sh scripts/setup.sh test
	@$(MAKE) --no-print-directory all
	$(BUSTED)

# make check: static checks, then the whole suite under ASan+UBSan, the
# allocation-failure harness, the suite under GC stress and under valgrind.
# Any report fails the run.
check:
	@sh scripts/setup.sh check
	@$(MAKE) --no-print-directory all $(ASAN_CORE)
	@$(MAKE) --no-print-directory lint asan allocfail gcstress memcheck soak bench-smoke
	@ASYNCIO_RANDOM_N=$${ASYNCIO_RANDOM_N:-5000} $(MAKE) --no-print-directory fuzz

lint:
	$(LUACHECK) -q lua spec examples bench types
	cppcheck --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --std=c11 -D_POSIX_C_SOURCE=200809L -q src

asan: $(ASAN_CORE)
	$(SAN_ENV) $(BUSTED54) --cpath="build/asan/?.so"

# GC stress and valgrind run each spec file in its own process: a full
# collection after every step costs in proportion to the heap, and one
# process holding every file's specs made the same runs several times as
# slow (measured: GC stress 17 minutes -> 2, valgrind 15 -> 6)
SPECS := $(wildcard spec/*_spec.lua)
# (the files that failed are named again at the end, where a log's tail shows them)
each_spec = failed=; for s in $(SPECS); do echo "$(1) $$s"; $(1) $$s || failed="$$failed $$s"; done; \
  if [ -n "$$failed" ]; then echo "$@ failed in:$$failed"; exit 1; fi

gcstress: all
	@$(call each_spec,ASYNCIO_GC_STRESS=1 $(BUSTED))

# (a random program costs about 60 ms under valgrind: spec/random_spec.lua runs 200)
memcheck: all
	@$(call each_spec,ASYNCIO_RANDOM_N=$${ASYNCIO_RANDOM_N:-200} $(VALGRIND) -q --error-exitcode=1 \
	  --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite $(BUSTED54))

# a million tasks, 100k timers, memory over ten runs
soak: all
	$(BUSTED) --run=soak

# the allocation-failure harness (spec/alloc/host.c), under ASan+UBSan:
# each scenario with its k-th allocation failing, for every k
ALLOCFAIL := build/asan/allocfail
ALLOC_SCENARIOS := $(wildcard spec/alloc/*.lua)

$(ALLOCFAIL): spec/alloc/host.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic $(SANITIZE) \
	  $(shell $(PKG_CONFIG) --cflags lua$(LUA_VER)) -o $@ $< $(shell $(PKG_CONFIG) --libs lua$(LUA_VER))

# (what the scenarios report on the way goes to build/allocfail.err)
allocfail: $(ASAN_CORE) $(ALLOCFAIL)
	@for s in $(ALLOC_SCENARIOS); do \
	  $(SAN_OPTS) LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/asan/?.so;;" \
	    $(ALLOCFAIL) $$s 2>build/allocfail.err || { grep -v '^asyncio: ' build/allocfail.err | tail -40; exit 1; }; \
	done

# a longer random-program run than the suite's (set ASYNCIO_SEED to replay)
fuzz: all
	ASYNCIO_RANDOM_N=$${ASYNCIO_RANDOM_N:-20000} $(BUSTED) spec/random_spec.lua

# make bench: installs the peers (scripts/setup.sh bench), then runs every
# workload on lua-asyncio and each peer, alternating, and prints medians and
# ratios. BENCH_ARGS="--rounds 3 --only W1,W4" narrows it.
BENCH_FLOOR := build/bench/libuv

$(BENCH_FLOOR): bench/impl/libuv.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic \
	  $(shell $(PKG_CONFIG) --cflags libuv) -o $@ $< $(LIBS)

bench:
	@sh scripts/setup.sh bench
	@$(MAKE) --no-print-directory all $(BENCH_FLOOR)
	$(LUA) bench/run.lua $(BENCH_ARGS)

# tiny sizes, every program's answer checked, whichever peers are installed
bench-smoke: all $(BENCH_FLOOR)
	$(LUA) bench/run.lua --smoke

# make bench-profile: per task / item / round trip, counted (not timed):
# instructions (callgrind), mallocs and bytes, Lua+C calls; the difference
# of runs at 2N and N. PROFILE_ARGS="--only W1,W4 --runtimes asyncio" narrows it.
MALLOCCOUNT := build/bench/malloccount.so

$(MALLOCCOUNT): bench/tools/malloccount.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -shared -fPIC -o $@ $<

bench-profile:
	@sh scripts/setup.sh bench
	@$(MAKE) --no-print-directory all $(MALLOCCOUNT)
	$(LUA) bench/profile.lua $(PROFILE_ARGS)

# W1 and W2 on lua-asyncio at 10 k, 100 k and 1 M tasks (time and bytes per task)
bench-scale: all
	$(LUA) bench/run.lua --scale

repl: all
	@$(RUN) $(LUA) -i -e 'asyncio = require "asyncio"; await = asyncio.await' \
	  -e 'print("asyncio and await are ready: asyncio.run(function() ... await(...) ... end)")'

# a prompt inside a running loop: await(...) at top level (lua/asyncio/repl.lua)
repl-async: all
	@$(RUN) $(LUA) -l asyncio.repl

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/asyncio $(DESTDIR)$(LUA_SHARE)/asyncio
	install -m 755 $(CORE) $(DESTDIR)$(LUA_LIBDIR)/asyncio/core.so
	install -m 644 $(LUAS) $(DESTDIR)$(LUA_SHARE)/asyncio/

# only the files install put there (and their directories, if left empty)
uninstall:
	rm -f $(DESTDIR)$(LUA_LIBDIR)/asyncio/core.so $(addprefix $(DESTDIR)$(LUA_SHARE)/asyncio/,$(notdir $(LUAS)))
	-rmdir $(DESTDIR)$(LUA_LIBDIR)/asyncio $(DESTDIR)$(LUA_SHARE)/asyncio 2>/dev/null

# make dist: the source archive of this commit (git archive), the release
# rockspec, and the .src.rock holding both, in build/dist: `luarocks
# --lua-version 5.4 install build/dist/lua-asyncio-$(VERSION)-1.src.rock`
# installs offline, docs and examples included.
VERSION := 0.1.0
DIST    := build/dist
dist:
	@rm -rf $(DIST) && mkdir -p $(DIST)
	git archive --format=tar.gz --prefix=lua-asyncio-$(VERSION)/ -o $(DIST)/lua-asyncio-$(VERSION).tar.gz HEAD
	cp rockspec/lua-asyncio-$(VERSION)-1.rockspec $(DIST)/
	@# a .src.rock is a zip of the rockspec and its source archive (luarocks
	@# pack would fetch the archive from a temporary directory)
	cd $(DIST) && zip -q lua-asyncio-$(VERSION)-1.src.rock \
	  lua-asyncio-$(VERSION)-1.rockspec lua-asyncio-$(VERSION).tar.gz
	@ls $(DIST)

clean:
	rm -rf build
