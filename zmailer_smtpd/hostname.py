"""The server's own name, ``myhostname`` (protocol.md §3.3 step 1).

The node name from ``uname``, canonicalised through ``getaddrinfo`` with
``AI_CANONNAME`` (up to 5 tries while the resolver says EAI_AGAIN), falling
back to the node name itself.  Computed once per process: it appears in every
greeting and reply, and a resolver hiccup must not change it mid-run.
"""

from __future__ import annotations

import os
import socket

_cached: str | None = None
TRIES = 5


def canonical_name(node: str, tries: int = TRIES) -> str:
    """The canonical name of `node`, or `node` when the resolver does not know it."""
    for _ in range(tries):
        try:
            infos = socket.getaddrinfo(node, None, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                       0, socket.AI_CANONNAME)
        except socket.gaierror as e:
            if e.errno == socket.EAI_AGAIN:
                continue
            return node
        except (OSError, UnicodeError):
            return node
        for info in infos:
            if info[3]:
                return info[3]
        return node
    return node


def myhostname() -> str:
    """The server host name (cached per process; a forked child inherits it)."""
    global _cached
    if _cached is None:
        node = os.uname().nodename  # OSError propagates: cli reports gethostname()
        _cached = canonical_name(node) if node else node
    return _cached


def set_myhostname(name: str | None) -> None:
    """Override (or with None, forget) the cached name: tests and fixtures."""
    global _cached
    _cached = name
