#!/usr/bin/python3
"""Stand-in SMTP-auth-pipe program: argv [path, user], password line on stdin.

Knows alice/s3cret and "-rf *"/"x y" (argv passes it untouched); exit 0 = ok.
"""
import sys

USERS = {b"alice": b"s3cret", b"-rf *": b"pw"}

user = sys.argv[1].encode("utf-8", "surrogateescape") if len(sys.argv) == 2 else None
password = sys.stdin.buffer.readline()
if user is not None and password.endswith(b"\n") and USERS.get(user) == password[:-1]:
    sys.stdout.write("password ok\n")
    sys.exit(0)
sys.stdout.write("bad password\n")
sys.exit(1)
