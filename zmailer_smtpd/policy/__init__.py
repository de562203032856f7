"""The SMTP policy subsystem (policy.md): builder, Berkeley DB, verdicts, DNS checks.

The session's seam is :mod:`zmailer_smtpd.policy.engine` (see its docstring).
"""

from .engine import PolicySession, SessionPolicy, open_policy, rfc822_quote

__all__ = ["PolicySession", "SessionPolicy", "open_policy", "rfc822_quote"]
