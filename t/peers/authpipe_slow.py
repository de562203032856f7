#!/usr/bin/python3
"""Stand-in auth program that never answers (3.0.1 would wait forever, T-9)."""
import sys
import time

sys.stdin.buffer.read()
print("thinking...", flush=True)
while True:
    time.sleep(3600)
