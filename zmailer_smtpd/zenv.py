"""ZENV: the ``zmailer.conf`` file of NAME=value lines (spool.md §1, protocol.md §1.4).

API::

    zenv = load_zenv(path)          # path from -Z, or None for the compiled-in file
    zenv.get("POSTOFFICE")          # str | None; file value, else the §1.3 default
    zenv.get("FOO", "x")            # file value, else §1.3 default, else "x"
    zenv.file_value("MAILVAR")      # str | None; the file only, no defaults
    zenv.file_bytes(b"MAILVAR")     # bytes | None; for $-expansion in smtpserver.conf
    zenv.path                       # the file name in use

Only the file is read, never the process environment: smtpserver does not
consult ``ZCONFIG`` either (spool.md §1.1).  With ``-Z`` an unreadable file is
an error (``load_zenv`` raises ``OSError``); without it, a missing file means
every variable is unset and the load is retried at each lookup, as 3.0.1 does.
Values are decoded with ``os.fsdecode`` so that paths round-trip to bytes.
"""

from __future__ import annotations

import os
import re

# The compiled-in file (ZMAILER_ENV_FILE) and the compiled-in defaults of
# spool.md §1.3, in the Debian layout the README assumes ($MAILBIN =
# /usr/lib/zmailer).  Packaging may change these constants.
DEFAULT_ZENV_FILE = "/etc/zmailer/zmailer.conf"
DEFAULTS: dict[str, str] = {
    "POSTOFFICE": "/var/spool/postoffice",
    "MAILSHARE": "/etc/zmailer",
    "MAILVAR": "/etc/zmailer",
    "MAILBIN": "/usr/lib/zmailer",
    "TRUSTEDUSER": "daemon",
}

_LINE_END = re.compile(rb"[\n\0]")
_VALUE_BLANKS = b" \t\v\f\r"


def parse_zenv(data: bytes, name: bytes) -> bytes | None:
    """The getzenv() rule: first line starting with NAME=, value after blanks, verbatim."""
    prefix = name + b"="
    for line in _LINE_END.split(data):
        if line.startswith(prefix):
            return line[len(prefix):].lstrip(_VALUE_BLANKS)
    return None


class ZEnv:
    """One ZENV file, read once (or retried while it cannot be read, without -Z)."""

    def __init__(self, path: str, data: bytes | None, *, retry: bool = False) -> None:
        self.path = path
        self._data = data
        self._retry = retry
        self._found: dict[bytes, bytes | None] = {}  # parse_zenv answers for self._data
        self._text: dict[str, str | None] = {}  # file_value answers, decoded

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "<memory>") -> ZEnv:
        """A ZENV from literal file content (tests, --check-config)."""
        return cls(path, data)

    @property
    def loaded(self) -> bool:
        """Whether the file has been read successfully."""
        return self._data is not None

    def _content(self) -> bytes | None:
        if self._data is None and self._retry:
            try:
                with open(self.path, "rb") as f:
                    self._data = f.read()
            except OSError:
                return None
        return self._data

    def file_bytes(self, name: bytes | str) -> bytes | None:
        """The raw value in the file, or None when unset there."""
        data = self._content()
        if data is None:
            return None
        key = os.fsencode(name) if isinstance(name, str) else name
        if not key:
            return None
        try:
            return self._found[key]
        except KeyError:
            value = self._found[key] = parse_zenv(data, key)  # the data never changes once read
            return value

    def file_value(self, name: str) -> str | None:
        """The value in the file (decoded), or None; compiled-in defaults not applied."""
        try:
            return self._text[name]
        except KeyError:
            raw = self.file_bytes(name)
            if self._data is None:  # not read (yet): a later call may still find the file
                return None if raw is None else os.fsdecode(raw)
            value = self._text[name] = None if raw is None else os.fsdecode(raw)
            return value

    def get(self, name: str, default: str | None = None) -> str | None:
        """The file value, else the compiled-in default of spool.md §1.3, else `default`."""
        value = self.file_value(name)
        if value is not None:
            return value
        if name in DEFAULTS:
            return DEFAULTS[name]
        return default

    def has(self, name: str) -> bool:
        """Whether the file sets the variable (ALLOWSOURCEROUTE counts by existence)."""
        return self.file_bytes(name) is not None


def load_zenv(path: str | None) -> ZEnv:
    """Load the -Z file (errors raise OSError) or, with None, the compiled-in one lazily."""
    if path is not None:
        with open(path, "rb") as f:
            return ZEnv(path, f.read())
    zenv = ZEnv(DEFAULT_ZENV_FILE, None, retry=True)
    zenv._content()
    return zenv
