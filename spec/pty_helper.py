#!/usr/bin/env python3
"""pty_helper.py SCRIPT CMD...: run CMD in a real terminal (a pty) and act
out SCRIPT, one action per line:
    line TEXT       type TEXT and Enter
    ctrl-c          type Ctrl-C (the terminal sends SIGINT)
    ctrl-d          type Ctrl-D (end of input at the start of a line)
    expect TEXT     wait until the output after the last match shows TEXT
                    (30 s at most: a guard against a hang, not a time bound)
    pause SECONDS   let the program go on that long (reading its output)
Prints everything the terminal showed, then "exit status N"."""
import os
import pty
import select
import sys
import time

script, cmd = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)

out = b""
seen = 0  # expect looks after this offset: each match consumes the output


def pump(wait):
    global out
    r, _, _ = select.select([fd], [], [], wait)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        out += data
    return True


def expect(text):
    global seen
    deadline = time.monotonic() + 30
    while out.find(text.encode(), seen) < 0:
        if time.monotonic() > deadline:
            sys.stdout.write(out.decode(errors="replace"))
            sys.stdout.write("\npty_helper: never saw %r\n" % text)
            os.kill(pid, 9)
            sys.exit(1)
        if not pump(0.05):
            break
    at = out.find(text.encode(), seen)
    if at >= 0:
        seen = at + len(text)


with open(script) as f:
    for action in f.read().splitlines():
        kind, _, arg = action.partition(" ")
        if kind == "line":
            os.write(fd, arg.encode() + b"\r")
        elif kind == "ctrl-c":
            os.write(fd, b"\x03")
        elif kind == "ctrl-d":
            os.write(fd, b"\x04")
        elif kind == "expect":
            expect(arg)
        elif kind == "pause":
            until = time.monotonic() + float(arg)
            while time.monotonic() < until:
                pump(0.05)
        pump(0.01)

deadline = time.monotonic() + 30
status = None
while status is None:
    pump(0.05)
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = os.waitstatus_to_exitcode(st)
    elif time.monotonic() > deadline:
        os.kill(pid, 9)
        status = "killed (hung)"
while pump(0.05):
    pass
sys.stdout.write(out.decode(errors="replace").replace("\r\n", "\n"))
sys.stdout.write("\nexit status %s\n" % status)
