#!/usr/bin/env python3
"""Stand-in scheduler MAILQv2 service (interfaces.md §5.3), written from the spec.

Usage: mailq2.py USER:PASSWORD:ATTRS [--challenge TEXT] [--mode MODE]
Listens on 127.0.0.1 (ephemeral port), prints "READY <port>", serves one
connection at a time: version line, challenge, AUTH check (md5 of challenge
line + password), ETRN answer.  Lines received are appended to $PEER_LOG.
Modes: normal, noversion (wrong first line), hang (says nothing).
"""

import hashlib
import json
import os
import socket
import sys
import time

log_path = os.environ.get("PEER_LOG")
user, password, attrs = sys.argv[1].split(":")
args = sys.argv[2:]
challenge = b"220 MAILQ-V2-CHALLENGE: %d.%06d.%d"
fixed = None
mode = "normal"
while args:
    if args[0] == "--challenge":
        fixed = args[1].encode()
    elif args[0] == "--mode":
        mode = args[1]
    args = args[2:]


def log(obj: object) -> None:
    if log_path:
        with open(log_path, "a") as f:
            f.write(json.dumps(obj) + "\n")


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(5)
print("READY", srv.getsockname()[1], flush=True)
counter = 0
while True:
    conn, _ = srv.accept()
    counter += 1
    f = conn.makefile("rwb", buffering=0)
    if mode == "hang":
        time.sleep(3600)
    if mode == "noversion":
        f.write(b"hello there\n")
        conn.close()
        continue
    f.write(b"version zmailer 2.0\n")
    now = time.time()
    ch = fixed or challenge % (int(now), int(now * 1e6) % 1000000, counter)
    f.write(ch + b"\n")
    line = f.readline()
    log({"line": line.decode("latin-1")})
    parts = line.rstrip(b"\n").split(b" ")
    want = hashlib.md5(ch + password.encode()).hexdigest().encode()
    if len(parts) != 3 or parts[0] != b"AUTH" or parts[1] != user.encode():
        f.write(b"-BAD USER OR AUTHENTICATOR OR CONTACT ADDRESS\n")
        conn.close()
        continue
    if parts[2] != want:
        f.write(b"-BAD USER OR PASSWORD\n")
        conn.close()
        continue
    f.write(b"+OK\n")
    line = f.readline()
    log({"line": line.decode("latin-1")})
    if not line.startswith(b"ETRN "):
        f.write(b"-Unknown command\n")
    elif "ETRN" not in attrs.split(",") and "ALL" not in attrs.split(","):
        f.write(b"-No ETRN allowed for you.\n")
    else:
        f.write(b"+OK; an ETRN started something.\n")
    conn.close()
