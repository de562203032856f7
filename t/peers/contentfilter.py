#!/usr/bin/env python3
"""Stand-in content filter (interfaces.md §2.4), written from the spec.

"#hungry", then per spool path line: read the file; everything after a line
`PEER-SCRIPT` is printed verbatim as the answer, then "#hungry".  A script
starting with `!hang`, `!die`, `!flood`, `!floodlines` or `!nohungry`
misbehaves on purpose.  `--socket PATH` serves the same protocol on a UNIX
stream socket (prints "READY\n" once listening).  Received paths, argv, env,
cwd and uids are appended to $PEER_LOG.
"""

import json
import os
import socket
import sys
import time

log_path = os.environ.get("PEER_LOG")
MARK = b"\nPEER-SCRIPT\n"


def log(obj: object) -> None:
    if log_path:
        with open(log_path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def serve(rd, wr) -> None:  # type: ignore[no-untyped-def]
    def say(b: bytes) -> None:
        wr.write(b)
        wr.flush()

    say(b"#hungry\n")
    while True:
        line = rd.readline()
        if not line:
            return
        path = line.rstrip(b"\n")
        log({"path": path.decode("latin-1")})
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            say(b"# cannot read: " + str(e).encode() + b"\n#hungry\n")
            continue
        _, _, script = data.partition(MARK)
        if script.startswith(b"!hang"):
            time.sleep(3600)
        if script.startswith(b"!die"):
            sys.exit(1)
        if script.startswith(b"!floodlines"):
            chunk = b"0 250 2.6.0 flood line\n" * 4096
            for _ in range(10 * 1024 * 1024 // len(chunk) + 1):
                say(chunk)
            say(b"#hungry\n")
            continue
        if script.startswith(b"!flood"):
            chunk = b"y" * 65536
            for _ in range(160):
                say(chunk)
            say(b"\n#hungry\n")
            continue
        if script.startswith(b"!nohungry"):
            say(b"0 250 2.6.0 looks fine\n")
            time.sleep(3600)
        say(script)
        say(b"#hungry\n")


log({"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
     "uid": os.getuid(), "euid": os.geteuid(), "pid": os.getpid()})
if len(sys.argv) >= 3 and sys.argv[1] == "--socket":
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sys.argv[2])
    srv.listen(5)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        conn, _ = srv.accept()
        if os.fork() == 0:
            srv.close()
            f = conn.makefile("rwb", buffering=0)
            serve(f, f)
            os._exit(0)
        conn.close()
else:
    serve(sys.stdin.buffer, sys.stdout.buffer)
