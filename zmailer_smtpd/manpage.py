"""The manual page's PARAM list and version, generated from the PARAM table.

    python -m zmailer_smtpd.manpage [--check] [PAGE]

rewrites in PAGE (default: ``man/smtpserver.8zm`` of the source tree) the text
between the two marker comments and the version on the ``.TH`` line.  With
``--check`` nothing is written; the exit status is 1 when the page is stale.
Why generated: ``params.PARAMS`` is the one place a keyword is declared, so
the manual cannot drift from what the parser accepts (STYLE.md habit 3).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from zmailer_smtpd import VERSION, __version__
from zmailer_smtpd import params as P

BEGIN = ('.\\" BEGIN PARAMS: generated from zmailer_smtpd/params.py by'
         ' "python -m zmailer_smtpd.manpage" (tools/gen-man-params); do not edit')
END = '.\\" END PARAMS'

DEFAULT_PAGE = Path(__file__).resolve().parent.parent / "man" / "smtpserver.8zm"

# The spelling 3.0.1's sample and manual use, for readability; keywords are
# case-insensitive, the table keeps them lower-case.  Unknown ones print as is.
DISPLAY: dict[str, str] = {k.lower(): k for k in (
    "MaxSameIpSource", "MaxParallelConnections", "ListenQueueSize", "TcpRcvBufferSize",
    "TcpXmitBufferSize", "BindPort", "BindAddress", "BindSmtp", "BindSmtpS", "BindSubmit",
    "RcptLimitCount", "RcptLimitCnt", "Rcpt-Limit-Count", "DEBUGcmd", "no-DEBUGcmd", "EXPNcmd",
    "no-EXPNcmd", "VRFYcmd", "no-VRFYcmd", "EHLO-OK", "NoEHLO", "PIPELINING-OK", "NoPIPELINING",
    "8BITMIME-OK", "No8BITMIME", "CHUNKING-OK", "NoCHUNKING", "DSN-OK", "NoDSN", "ETRN-OK",
    "NoETRN", "ENHANCEDSTATUSCODES-OK", "ENHANCEDSTATUS-OK", "NoENHANCEDSTATUSCODES",
    "NoENHANCEDSTATUS", "NoENCHANCEDSTATUSCODES", "NoENCHANCEDSTATUS",
    "AUTH-LOGIN-also-without-TLS", "SMTP-auth-pipe", "MSA-mode", "tls-CAfile", "tls-CApath",
)}

# A sub-heading starts before the first keyword of each part of the table.
HEADINGS: dict[str, str] = {
    "maxsameipsource": "Connection limits and listening sockets",
    "maxsize": "Protocol limits",
    "debugcmd": "Commands and EHLO features",
    "smtp-auth": "Authentication",
    "use-tls": "TLS",
    "rcvd-ident": "Received header data",
    "enable-router": "Router, content filter, policy",
    "help": "Texts",
    "session-timeout": "Extensions of zmailer_smtpd",
    "newgroup": "Parameter groups",
}


# Longer explanations for the manual, beyond the table's one-line ``doc``.
# Each key must be a setting of the table (a test checks).
NOTES: dict[str, str] = {
    "maxsameipsource": (
        "Daemon mode only.  Over the limit the client gets "
        "\"450 5.7.1 Too many simultaneous connections from same IP address\" and is "
        "disconnected; over four times the limit the connection is closed without a word."),
    "maxparallelconnections": (
        "Daemon mode only; SMTP, SMTPS and submission listeners are counted separately.  "
        "Over the limit the client gets \"450 5.7.1 Too many simultaneous connections to "
        "this server\"; over the limit plus 100 the connection is closed without a word."),
    "maxsize": "Advertised in the EHLO reply as SIZE; a bigger message is read to its end "
               "and answered 552 5.3.4.",
    "min-availspace": "With less free space a message is refused with a temporary failure.",
    "rcptlimitcount": "Further recipients get a temporary failure; the client sends them in "
                      "another transaction.",
    "tarpit": (
        "Before each 4xx/5xx reply to HELO, MAIL, RCPT, VRFY, EXPN, AUTH and unknown "
        "commands the session sleeps I seconds; then the delay becomes delay + delay * E, "
        "at most T.  \"tarpit 20 0.1 300\" sleeps 20, 22, 24, 27 ... seconds."),
    "enable-router": (
        "Lets the router see client input (VRFY, EXPN, and MAIL/RCPT addresses with the f/t "
        "style flags); the router's scripts must then quote safely.  Off by default for that "
        "reason."),
    "policydb": "TYPE is btree (Berkeley DB); PATH is the database file name without its .db "
                "suffix.  See SMTP-POLICY.",
    "contentfilter": "See CONTENTFILTER INTERFACE.",
    "use-tcp-wrapper": "See TCP-WRAPPER.",
    "smtp-auth": "See SMTP-AUTH.",
    "smtp-auth-pipe": "See SMTP-AUTH.",
    "use-tls": "See TLS MODE.",
    "hdr220": "The meta tags of the text are described under \"The greeting\".",
    "help": "The lines are added to the reply to HELP.",
    "lmtp-mode": "LMTP (RFC 2033) is for testing: HELO and EHLO become unknown, LHLO is "
                 "accepted, and the reply after the data is repeated per recipient.",
    "msa-mode": "Before AUTH only STARTTLS, AUTH, HELO, EHLO, NOOP, RSET and QUIT are "
                "accepted (530 5.3.0), unless the policy trusts the client; MAIL always needs "
                "AUTH.",
    "etrn-cluster": "ETRN is also passed on to each NODE's scheduler by the MAILQv2 protocol "
                    "with this user name and password.",
    "newgroup": "See the description of groups above.",
}


def esc(text: str) -> str:
    """Text safe on a troff line: backslashes, hyphen-minus, a leading control character."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    if out[:1] in (".", "'"):
        out = "\\&" + out
    return out


def unescape(text: str) -> str:
    """The plain text of a troff line as far as keywords go (fonts, \\-, \\&, \\e)."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)
    return text.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\").replace("\\ ", " ")


def display(keyword: str) -> str:
    """A keyword as the manual shows it."""
    return DISPLAY.get(keyword, keyword)


def _default(p: P.Param) -> str:
    d = p.default
    if p.syntax == P.FLAG:
        return "on" if d else "off"
    if p.syntax == P.DELIVERBY and isinstance(d, int) and d < 0:
        return "off"
    if d is None:
        return "unset"
    if isinstance(d, tuple):
        if not d:
            return "none"
        return " ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in d)
    if isinstance(d, bytes):
        return '"' + d.decode("latin-1") + '"'
    if isinstance(d, bool):
        return "on" if d else "off"
    return str(d)


def _bold_list(words: Iterable[str]) -> str:
    return ", ".join(f"\\fB{esc(display(w))}\\fR" for w in words)


def render_param(p: P.Param) -> list[str]:
    """The .TP entry of one setting."""
    head = "PARAM " + esc(display(p.name))
    lines = [".TP"]
    if p.args:
        lines.append(f'.BI "{head} " "{esc(p.args)}"')
    else:
        lines.append(f'.B "{head}"')
    lines.append(esc(p.doc))
    if p.name in NOTES:
        lines.append(esc(NOTES[p.name]))
    if p.syntax != P.NEWGROUP:
        scope = "global (one value for all groups)" if p.scope == P.GLOBAL else "per group"
        lines.append(f"Scope: {scope}.")
        lines.append(esc(f"Default: {_default(p)}."))
    if p.minimum is not None and p.syntax == P.INT:
        lines.append(esc(f"Values below {p.minimum} become {p.minimum}."))
    if p.maximum is not None:
        if p.syntax in (P.RESTLIST, P.CLUSTER):
            unit = "lines" if p.syntax == P.RESTLIST else "entries"
            lines.append(esc(f"At most {p.maximum} {unit}."))
        else:
            lines.append(esc(f"Values above {p.maximum} become {p.maximum}."))
    if p.choices:
        lines.append("One of " + _bold_list(p.choices) + ".")
    if p.syntax in (P.REST, P.RESTLIST):
        lines.append("The value is the rest of the line, verbatim, without $\\-expansion.")
    if p.syntax == P.EXEC:
        lines.append("Taken only if the file is executable when the configuration is read.")
    if p.aliases:
        lines.append("Other spellings: " + _bold_list(p.aliases) + ".")
    if p.negations:
        lines.append("Switched off by: " + _bold_list(p.negations) + ".")
    if not p.implemented:
        why = f" ({p.note})" if p.note else ""
        lines.append(esc(f"Accepted, but has no effect here{why}; "
                         "a warning names the file and line."))
    return lines


def render_params(params: Iterable[P.Param] = P.PARAMS) -> str:
    """The generated block, marker lines included."""
    out = [BEGIN]
    for p in params:
        if p.name in HEADINGS:
            out.append(f'.SS "PARAM keywords: {esc(HEADINGS[p.name])}"')
        out.extend(render_param(p))
    out.append(END)
    return "\n".join(out) + "\n"


def th_line(current: str) -> str:
    """The .TH line with the package version (and the release date in VERSION, if any)."""
    m = re.search(r"(\d{4}-\d{2}-\d{2})", VERSION)
    if m:
        date = m.group(1)
    else:
        old = re.match(r'\.TH\s+\S+\s+\S+\s+"([^"]*)"', current)
        date = old.group(1) if old else ""
    return f'.TH SMTPSERVER 8zm "{date}" "zmailer_smtpd {__version__}" "ZMailer"'


def update(page: str) -> str:
    """The page with a fresh PARAM block and .TH line (ValueError without the markers)."""
    start = page.find(BEGIN)
    end = page.find(END)
    if start < 0 or end < start:
        raise ValueError("the page lacks the BEGIN/END PARAMS marker comments")
    end += len(END)
    if page[end:end + 1] == "\n":
        end += 1
    page = page[:start] + render_params() + page[end:]
    return re.sub(r"(?m)^\.TH .*$", lambda m: th_line(m.group(0)), page, count=1)


def generated_block(page: str) -> str:
    """The text between the markers (inclusive), or "" without them."""
    start = page.find(BEGIN)
    end = page.find(END)
    if start < 0 or end < start:
        return ""
    return page[start:end + len(END)]


def documented_keywords(page: str) -> set[str]:
    """Every keyword spelling the PARAM list documents, lower-case."""
    found: set[str] = set()
    for line in generated_block(page).splitlines():
        plain = unescape(line)
        m = re.match(r'\.BI? "PARAM (\S+?)"?(\s|$)', plain)
        if m:
            found.add(m.group(1).strip('"').lower())
        elif line.startswith(("Other spellings:", "Switched off by:")):
            found.update(unescape(w).lower() for w in re.findall(r"\\fB(.*?)\\fR", line))
    return found


def param_mentions(page: str) -> set[str]:
    """Every ``PARAM keyword`` written anywhere in the page, lower-case."""
    words: set[str] = set()
    for line in page.splitlines():
        if line.startswith(('.\\"', '.SS')):
            continue
        for m in re.finditer(r"\bPARAM\s+\"?([A-Za-z0-9][A-Za-z0-9-]*)", unescape(line)):
            words.add(m.group(1).lower())
    return words


# --- DEVIATIONS and CHANGES -------------------------------------------------------


def changes_tag(text: str) -> str:
    """A CHANGES bullet's tag: its first five words, lower-case, other characters blanks."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split()[:5])


def changes_deviations(changes: str) -> list[str]:
    """The text of every bullet under a "Deviations" line of CHANGES (all releases)."""
    bullets: list[str] = []
    inside = False
    for line in changes.splitlines():
        if not line.strip():
            continue
        if line.startswith("- ") and inside:
            bullets.append(line[2:].strip())
        elif line[:1] in (" ", "\t") and inside and bullets:
            bullets[-1] += " " + line.strip()
        else:
            inside = "deviation" in line.lower()
    return bullets


def deviation_tags(page: str) -> list[str]:
    """The tags of the ``.\\" CHANGES: <tag>`` comments of the page."""
    return [m.group(1).strip() for m in re.finditer(r'(?m)^\.\\" CHANGES: (.*)$', page)]


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or --check) the PARAM section and version of the manual page."""
    ap = argparse.ArgumentParser(prog="python -m zmailer_smtpd.manpage",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true",
                    help="only report whether the page is up to date (exit 1 if not)")
    ap.add_argument("page", nargs="?", default=str(DEFAULT_PAGE), help="the troff page")
    ns = ap.parse_args(argv)
    path = Path(ns.page)
    try:
        old = path.read_text(encoding="utf-8")
        new = update(old)
    except (OSError, ValueError) as e:
        print(f"{ap.prog}: {path}: {e}", file=sys.stderr)
        return 2
    if new == old:
        return 0
    if ns.check:
        print(f"{path}: PARAM section or version is stale; run tools/gen-man-params",
              file=sys.stderr)
        return 1
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    print(f"{path}: updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
