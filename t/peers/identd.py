#!/usr/bin/env python3
"""Stand-in RFC 1413 ident server, written from the spec (interfaces.md §6.1).

Usage: identd.py MODE   (user:NAME | error | badport | silent)
Listens on 127.0.0.1 (ephemeral port), prints "READY <port>", answers each
query "<port> , <port>\\r\\n"; queries are appended to $PEER_LOG.
"""

import json
import os
import socket
import sys
import time

mode = sys.argv[1]
log_path = os.environ.get("PEER_LOG")
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(5)
print("READY", srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    f = conn.makefile("rwb", buffering=0)
    q = f.readline()
    if log_path:
        with open(log_path, "a") as lf:
            lf.write(json.dumps({"query": q.decode("latin-1")}) + "\n")
    ports = q.strip().decode()
    if mode == "silent":
        time.sleep(3600)
    if mode.startswith("user:"):
        f.write(ports.encode() + b" : USERID : UNIX : " + mode[5:].encode() + b"\r\n")
    elif mode == "badport":
        f.write(b"1 , 2 : USERID : UNIX : joe\r\n")
    else:
        f.write(ports.encode() + b" : ERROR : NO-USER\r\n")
    conn.close()
