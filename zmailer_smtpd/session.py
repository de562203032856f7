"""The SMTP session: one method per verb, over a byte stream (protocol.md §4).

CONTRACT (other modules rely on it; extend, do not break):

    ctx = SessionContext(...)
    rc = run_session(ctx, transport)   # whole session; returns exit status

`transport` has recv(n)->bytes, send(b)->int, fileno(); see stream.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionContext:
    """Everything a session needs that is decided before its first byte."""

    options: Any  # cli.Options
    config: Any  # config.Config (the whole file)
    settings: Any  # config.Settings of this session's group
    zenv: Any  # zenv.ZEnv
    mode: str  # "daemon" | "inetd" | "interactive"
    network: bool  # network-connected (protocol.md §3.1)
    peer_addr: str | None = None  # "192.0.2.1" / "2001:db8::1" (no brackets)
    peer_port: int = -1
    local_addr: str | None = None
    local_port: int = -1
    sameip: int = 0  # sessions from this IP counted by the parent, this one included
    listener_kind: str = "smtp"  # "smtp" | "smtps" | "submit"
    log: Any = None  # sessionlog.SessionLog
    # Optional collaborators, None when not configured:
    policy: Any = None  # policy engine factory / session state
    router: Any = None
    contentfilter: Any = None
    tls: Any = None
    auth: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_session(ctx: SessionContext, transport: Any) -> int:
    """Run one SMTP session to its end; return the process exit status."""
    raise NotImplementedError
