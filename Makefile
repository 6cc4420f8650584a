# lua-asyncio. `make demo` and `make test` do their own set-up (scripts/setup.sh).
LUA        ?= lua5.4
LUA_VER    ?= 5.4
PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VER)
LUA_SHARE  ?= $(PREFIX)/share/lua/$(LUA_VER)
BUSTED     ?= busted

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -Wall -Wextra -pedantic \
           $(shell $(PKG_CONFIG) --cflags lua$(LUA_VER) libuv 2>/dev/null)
LIBS    := $(shell $(PKG_CONFIG) --libs libuv 2>/dev/null)
LDFLAGS += -shared

SRC  := $(wildcard src/*.c)
LUAS := $(wildcard lua/asyncio/*.lua)
CORE := build/asyncio/core.so
RUN  := LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;"

.PHONY: all setup demo test repl install uninstall clean check bench

all: $(CORE)

$(CORE): $(SRC) src/asyncio.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(SRC) $(LIBS)

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

repl: all
	@$(RUN) $(LUA) -i -e 'print("asyncio ready: asyncio = require \"asyncio\"")'

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/asyncio $(DESTDIR)$(LUA_SHARE)/asyncio
	install -m 755 $(CORE) $(DESTDIR)$(LUA_LIBDIR)/asyncio/core.so
	install -m 644 $(LUAS) $(DESTDIR)$(LUA_SHARE)/asyncio/

uninstall:
	rm -rf $(DESTDIR)$(LUA_LIBDIR)/asyncio $(DESTDIR)$(LUA_SHARE)/asyncio

clean:
	rm -rf build
