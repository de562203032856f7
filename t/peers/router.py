#!/usr/bin/env python3
"""Stand-in for `router -Ismtpserver` (interfaces.md §1.4), written from the spec.

Loop: print "#hungry", read a line, split at the first TAB, answer as the
stock server.cf would.  Test behaviours are chosen by the argument text
(`hang@...`, `die@...`, ...) and PEER_START; every request is appended as
repr(bytes) to $PEER_LOG, preceded by a line with argv, env and cwd.
"""

import json
import os
import sys
import time

out = sys.stdout.buffer
inp = sys.stdin.buffer
log_path = os.environ.get("PEER_LOG")


def log(obj: object) -> None:
    if log_path:
        with open(log_path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def say(b: bytes) -> None:
    out.write(b)
    out.flush()


log({"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
     "euid": os.geteuid()})
start = os.environ.get("PEER_START", "")
if start == "die":
    sys.exit(3)
if start == "hang":
    time.sleep(3600)
# Banner lines before the first #hungry, as the real router prints them.
say(b"ZMailer router (3.0.1 #1: stand-in)\n")
say(b"  user@host:/build/dir\n")
say(b"Copyright 1990 Rayan S. Zachariassen\n")
say(b"Configured with command: './configure'\n")
sys.stderr.buffer.write(b"stderr banner line\n")
sys.stderr.buffer.flush()
say(b"\n")
if start == "nohungry":
    time.sleep(3600)

while True:
    say(b"#hungry\n")
    line = inp.readline()
    if not line:
        sys.exit(0)
    log({"request": line.decode("latin-1")})
    key, tab, arg = line.partition(b"\t")
    if not tab:
        say(b"550 SYSTEM ERROR; UNKNOWN KEY: '" + key.rstrip(b"\n") + b"' ARG: ''\n")
        continue
    arg = arg[:-1] if arg.endswith(b"\n") else arg
    a = arg[1:-1] if arg.startswith(b"<") and arg.endswith(b">") else arg
    word = a.split(b"@")[0]
    if word == b"hang":
        time.sleep(3600)
    if word == b"die":
        sys.exit(1)
    if word == b"silent":
        continue
    if word == b"garbage":
        say(b"250 2.0.0 ok\rforged line\x00\xff\n")
        continue
    if word == b"huge":
        say(b"250 " + b"x" * 100000 + b"\n")
        continue
    if word == b"flood":
        for _ in range(100000):
            say(b"250-2.0.0 flood\n")
        continue
    if word == b"partial":
        say(b"250 2.0.0 cut")
        sys.exit(0)
    if word == b"nocode":
        say(b"garbage answer\n")
        continue
    if word == b"multi":
        say(b"250 2.0.0 first\n250 second\n")
        continue
    if key == b"from":
        if not a:
            say(b"250 2.0.0 Ok (sourcechannel 'error' accepted)\n")
        else:
            say(b"250 2.0.0 Ok (routing verified)\n")
    elif key == b"to":
        if a == b"nosuchuser@mx.example.net":
            say(b"554 5.0.0 unresolvable address: <" + a + b">; nosuchuser; " + a + b"\n")
        else:
            say(b"250 2.0.0 Ok (routing verified)\n")
    elif key in (b"verify", b"expand"):
        if a == b"staff" and key == b"expand":
            say(b"250 2.1.5 Alice Example <alice>\n")
            say(b"250 2.0.0 smtp delivery to mx.example.org for <bob@example.org>\n")
        elif a == b"carol":
            say(b"550 5.1.1 no such user: <carol>\n")
        elif a == b"x":
            say(b"250 ok fine\n")
        else:
            say(b"250 2.1.5 Some User <" + a + b">\n")
    elif key == b"hello":
        say(b"250 Hello you at " + a.split(b" ")[0] + b" !\n")
    else:
        say(b"550 SYSTEM ERROR; UNKNOWN KEY: '" + key + b"' ARG: '" + arg + b"'\n")
