#!/usr/bin/env python3
"""Stand-in whoson server, written from the spec (interfaces.md §6.2).

Usage: whosond.py ADDR=DATA ...   Listens on 127.0.0.1 TCP (ephemeral port),
prints "READY <port>"; "QUERY <addr>\\r\\n\\r\\n" -> "+DATA" for known
addresses, "-Not Logged In" otherwise.  Queries go to $PEER_LOG.
"""

import json
import os
import socket
import sys

known = dict(a.split("=", 1) for a in sys.argv[1:])
log_path = os.environ.get("PEER_LOG")
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(5)
print("READY", srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(1024)
        if not chunk:
            break
        buf += chunk
    if log_path:
        with open(log_path, "a") as lf:
            lf.write(json.dumps({"query": buf.decode("latin-1")}) + "\n")
    addr = buf.split(b"\r\n")[0][len(b"QUERY "):].decode()
    if addr in known:
        conn.sendall(b"+" + known[addr].encode() + b"\r\n\r\n")
    else:
        conn.sendall(b"-Not Logged In\r\n\r\n")
    conn.close()
