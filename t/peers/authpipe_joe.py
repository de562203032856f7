#!/usr/bin/python3
"""Stand-in SMTP-auth-pipe program for the session tests: accepts joe/secret only.

argv [path, user], password line on stdin; exit 0 = ok (as authpipe_good.py).
"""
import sys

user = sys.argv[1].encode("utf-8", "surrogateescape") if len(sys.argv) == 2 else None
password = sys.stdin.buffer.readline()
if user == b"joe" and password == b"secret\n":
    sys.stdout.write("password ok\n")
    sys.exit(0)
sys.stdout.write("bad password\n")
sys.exit(1)
