#!/usr/bin/python3
"""Stand-in auth program that prints 1 MiB of binary garbage (more than a pipe
buffer: 3.0.1 deadlocks on it, T-9).  Exit 0 for user "alice", else 1: only
the exit status decides."""
import sys

sys.stdin.buffer.read()
junk = bytes(range(256)) * 4096
sys.stdout.buffer.write(b"\xff\x00garbage\r" + junk)
sys.stdout.buffer.flush()
sys.exit(0 if sys.argv[1:] == ["alice"] else 1)
