"""zmailer_smtpd: a drop-in Python replacement for ZMailer's smtpserver."""

__version__ = "0.1.0"

# Greeting %V and VERB use VersionNumb; -V prints Version (protocol.md §1.2).
VERSION_NUMB = f"zmailer_smtpd {__version__}"
VERSION = f"{VERSION_NUMB}: 2026-11-28"
