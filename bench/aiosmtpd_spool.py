"""aiosmtpd as a benchmark peer: every message is on disk before its 250.

Usage: aiosmtpd_spool.py HOST PORT SPOOLDIR

The handler writes the message to a new file, fsyncs it, renames it into
place and fsyncs the directory (the same durability our spool commit gives)
in a worker thread, so ten sessions can wait on the disk at once the way an
asyncio server would in production.  Prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_seq = itertools.count()


def write_durably(spool: str, data: bytes) -> None:
    """Exclusive create, write, fsync, rename, directory fsync."""
    n = next(_seq)
    tmp = os.path.join(spool, f".tmp.{os.getpid()}.{n}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(spool, f"{os.getpid()}.{n}"))
    dfd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class SpoolHandler:
    """aiosmtpd handler: envelope header lines plus the body, durably."""

    def __init__(self, spool: str) -> None:
        self.spool = spool

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        head = b"".join(
            [b"F " + (envelope.mail_from or "").encode("utf-8", "surrogateescape") + b"\n"]
            + [b"T " + r.encode("utf-8", "surrogateescape") + b"\n" for r in envelope.rcpt_tos]
            + [b"\n"])
        body = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, write_durably, self.spool, head + body)
        return "250 2.0.0 Ok: queued"


async def serve(host: str, port: int, spool: str) -> None:
    loop = asyncio.get_running_loop()
    handler = SpoolHandler(spool)

    def factory() -> Any:
        return SMTP(handler, hostname="bench.localdomain", data_size_limit=64 * 1024 * 1024)

    server = await loop.create_server(factory, host, port, backlog=128)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    asyncio.run(serve(argv[1], int(argv[2]), argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
