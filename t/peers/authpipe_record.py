#!/usr/bin/python3
"""Stand-in auth program that records what it got into "$ZCONFIG.record"
(argv, environment, stdin) so a test can compare them with §3.6.1; exit 0."""
import json
import os
import sys

data = sys.stdin.buffer.read()
with open(os.environ["ZCONFIG"] + ".record", "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ), "stdin": data.decode("latin-1"),
               "fds": sorted(int(n) for n in os.listdir("/proc/self/fd"))}, f)
print("recorded")
