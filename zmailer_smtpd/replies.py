"""Reply texts, as named byte constants (protocol.md §4, spool.md §8-§10).

Tests import these names.  A collaborator's texts (AUTH, ETRN, router,
content filter, load limit) live in its own module instead.  Texts are 3.0.1's where the text is not itself a
defect; ``%s``/``%d`` placeholders are filled with bytes ``%`` formatting.
The enhanced status code (ESC) is kept apart from the text: the reply
function adds it when ENHANCEDSTATUSCODES is on.
"""

from __future__ import annotations

# Default texts by code (§4.1); 220/221/421 default to "<me> <arg>".
DEFAULT_TEXT: dict[int, bytes] = {
    250: b"Ok",
    251: b"User not local; will forward to <%s>",
    252: b"Cannot VRFY user, but will accept message and attempt delivery",
    354: b"Start mail input; end with <CRLF>.<CRLF>",
    450: b"Requested mail action not taken: mailbox unavailable",
    451: b"Requested action aborted: local error in processing",
    452: b"Requested action not taken: insufficient storage",
    500: b"Syntax error, command unrecognized",
    501: b"Syntax error in parameters or arguments",
    502: b"Command not implemented",
    503: b"Bad sequence of commands",
    504: b"Command parameter not implemented",
    550: b"Requested action not taken: mailbox unavailable",
    551: b"User not local; please try <%s>",
    552: b"Requested mail action aborted: exceeded storage allocation",
    553: b"Requested action not taken: mailbox name not allowed",
    554: b"Transaction failed",
}
UNKNOWN_CODE_TEXT = b"code unknown, program bug!"

# Greeting and session start (§4.2)
GREETING_DEFAULT = b"%H ZMailer Server %V ESMTP%I ready at %T"
REJECT_NET_1 = b"Hello %s; If you feel we mistreat you, do contact us."
REJECT_NET_2 = b"Hello %s; Ask HELP for our contact information."
REJECT_NET_MSG = b"Hello %s; %s"
REJECT_NET_DEFAULT = b"Hello %s; %s - You are on our reject-IP-address -list, GO AWAY!"
SAMEIP_450 = (
    b"%s - Come again later, too many simultaneous connections from this IP address /ms(%d of %d)"
)

# Command processing (§4.4)
PIPELINE_GUARD = b"HELLO %s, YOU ARE SENDING PIPELINED INPUT, BUT DIDN'T GREET PROPERLY WITH EHLO"
ILLEGAL_INPUT = b"Illegal input characters: %s"
ILLEGAL_NUL = b"NUL on SMTP input"
ILLEGAL_8BIT = b"8-bit char on SMTP input"
ILLEGAL_CTRL = b"Control chars on SMTP input"
NOT_TERMINATED = b"Line not terminated with CRLF.."
LINE_TOO_LONG = b"Line too long (%d chars)"
UNKNOWN_COMMAND = b"Unknown command '%s'"
TOO_MANY_UNKNOWN = b"Hi %s, One too many unknown command '%s'"
NOT_CONFIGURED = b"This SMTP server has not been configured!"
POLICY_PROBLEM_1 = b"Ask HELP for our contact information."
POLICY_PROBLEM_2 = b"Policy database problem: %s"
POLICY_PROBLEM_CONFIG = b"Configuration bug"
POLICY_PROBLEM_OPEN = b"db Open failure"
REJECT_NET_CMD_1 = b"Hello %s; Ask HELP for our contact information."
REJECT_NET_CMD_2 = b"If you feel we mistreat you, do contact us."
REJECT_NET_CMD_3 = b"Hello %s; you are on our reject-IP-address -list, GO AWAY!"
INTERNAL_ERROR = DEFAULT_TEXT[451]

# HELO/EHLO (§4.7.1)
HELO_INVALID = b"Invalid `%s' parameter!"
HELO_SORRY_ERR = b"Sorry %s, Err: %s"
HELO_PATTERN_REJECT = b"Sorry %s, %s"
HELO_PATTERN_DENIED = b"access denied."
HELO_HELLO = b"%s Hello %s"
HELO_EXPECTED = b'%s expected "%s %s"'
HELO_INCONSISTENT_1 = b"%s That hostname is inconsistent with"
HELO_INCONSISTENT_2 = b"%s your address to name mapping."
BAD_HELO_INPUT = b"Bad.Helo.Input"

# MAIL (§4.7.2)
MAIL_WAIT_HELO = b"Hello %s, Waiting for HELO/EHLO command"
MAIL_WAIT_RCPT = b"Hello %s, Waiting for RCPT command"
MSA_MUST_AUTH = b"Hello %s, In SUBMISSION mode sender must authenticate first!"
MAIL_NO_FROM = b"Hello %s, where is From: in that?"
MAIL_WHERE_BRACKET = b"Hello %s, where is <...> in that?"
MAIL_WHERE_BRACKET_EOL = b"Hello %s, where is <...> in this: "
MAIL_STRANGENESS = b"Hello %s, strangeness between ':' and '<': %s"
TOO_MANY_LT = b"there are too many <'s in this: %s"
MAIL_THAT_WAS = b"Hi %s, that was for input: %s"
MAIL_TOO_MANY_GT = b"Hi %s, there are too many >'s in this: <%s"
MAIL_TOO_MANY_GT_BARE = b"Hi %s, there are too many >'s in that!"
MISSING_GT = b"Missing ending '>' bracket"
MAIL_OK = b"Sender syntax Ok; "
MAIL_OK_ROUTE = b"Sender syntax Ok; , source route ignored"
STORAGE_452 = b"Requested action not taken: insufficient storage"
MAIL_TOO_LARGE = (
    b"This message is larger, than our maximum acceptable incoming message size of  %d  chars."
)
MAIL_NO_SPACE = b"Try again later, insufficient storage available at the moment"
POLICY_MAIL_MSG = b"Hello %s, for your MAIL FROM address <%s> policy analysis reported: %s"
POLICY_MAIL_TEMPDNS = (
    b"Hello %s, for your input: <%s> policy analysis reports temporary DNS error with your source domain."
)
POLICY_MAIL_DNS = b"Hello %s, for your input: <%s> policy analysis reports DNS error with your source domain."
POLICY_MAIL_DENIED_TEMP = b"Hello %s, for address <%s> access denied by the policy analysis functions."
POLICY_MAIL_DNS_PERM = (
    b"Hello %s, for MAIL FROM address <%s> the policy analysis reports DNS error with your source domain."
)
POLICY_MAIL_DENIED = b"Hello %s, for MAIL FROM address <%s> access is denied by the policy analysis functions."

# RCPT (§4.7.3)
RCPT_EARLIER_REJECT = b"Hello %s, access denied by the policy analysis functions by earlier rejection"
RCPT_WAIT_HELO = b"Hello %s, Waiting for HELO command"
RCPT_WAIT_MAIL = b"Hello %s, Waiting for MAIL command"
RCPT_NO_TO = b"where is To: in this?  %s"
RCPT_WHERE_BRACKET = b"where is <...> in this?  %s"
RCPT_STRANGENESS = b"strangeness between ':' and '<': %s"
RCPT_NULL = b"Null address valid only as source: %s"
RCPT_TOO_MANY_GT = b"there are too many >'s in this: %s"
RCPT_TOO_MANY_GT_BARE = b"there are too many >'s in that!"
RCPT_MISSING_GT = b"Missing ending '>' bracket: %s"
RCPT_EMPTY = b"What is an empty recipient?"
RCPT_TOO_MANY = b"Too many recipients in one go!"
RCPT_TOO_LARGE = b"Message size exceeds fixed maximum size of %d chars for acceptable email; rcpt=<%s>"
RCPT_NO_SPACE = b"insufficient storage space, try again later"
SPAM_TRAP = b"SPAM trap -- too many recipients for an empty source address!"
RCPT_OK = b"Recipient address syntax Ok%s; rcpt=<%s>"
RCPT_OK_SIZE = b"Ok; can accomodate %d byte message%s for <%s>"
POLICY_RCPT_MSG_TEMP = b"Hello %s, for recipient address <%s> the policy analysis reported: %s"
POLICY_RCPT_TEMPDNS = b"Hello %s, policy analysis reports temporary DNS error with the target domain: <%s>"
POLICY_RCPT_RELAY = b"Your IP address %s is not allowed to relay to email address <%s> via our server; MX rule"
POLICY_RCPT_DNS_TEMP = b"Hello %s, Policy analysis found DNS error on the target address: <%s>"
POLICY_RCPT_REJECT = b"Hello %s, Policy rejection on the target address: <%s>"
POLICY_RCPT_MSG = b"Hello %s, Policy analysis reported: %s rcpt=<%s>"
POLICY_RCPT_DNS = b"Hello %s, Policy analysis found DNS error on the target domain: <%s>"

# DATA / BDAT (§4.7.4, §4.7.5, spool.md §8-§9)
DATA_JUNK = b"Extra junk after 'DATA' verb"
DATA_WHY = b"Hi %s, %s"
WHY_HELO = b"Waiting for HELO command"
WHY_MAIL = b"Waiting for MAIL command"
WHY_RCPT = b"Waiting for RCPT command"
WHY_INTERMIX = b"Must not intermix BDAT and DATA in same transaction!"
NO_VALID_SENDER = b"No valid sender, rejecting all recipients"
NO_VALID_RCPTS = b"No valid recipients at RCPT addresses, or no RCPT addresses at all"
BDAT_NO_VALID_RCPT = b"No valid recipient at RCPT addresses, or no RCPT addresses at all"
DATA_354 = DEFAULT_TEXT[354]
DATA_TOO_LARGE = b"Size of this message exceeds the fixed maximum size of  %d  chars for received email "
DATA_BARE_LF = b"Bare LF or bare CR in message data; only CR LF line ends are accepted"
BDAT_BAD_SEQUENCE = b"Bad sequence of commands"
BDAT_DISCARDED = b"BDAT block discarded due to earlier error"
BDAT_LAST_OK = b"%s Roger, got %d bytes in the last chunk, stored %d bytes into spool"
BDAT_RECEIVED = b"Received %d bytes"

# RSET, NOOP, QUIT, TURN, VERB, TICK, Z-* (§4.7.6-§4.7.15)
RSET_OK = b"Reset processed, now waiting for MAIL command"
RSET_JUNK = b"Extra junk after 'RSET' verb; RSET processed anyway"
NOOP_OK = b"Ok"
EXTRA_JUNK = b"Extra junk after '%s' verb"
QUIT_OUT = b"%s Out"
NOT_IMPLEMENTED = b"Command not implemented"
VERB_1 = b"ZMailer SMTP server %s"
VERB_2 = b"Copyright 1990 Rayan S. Zachariassen"
VERB_3 = b"Copyright 1991-2004 Matti Aarnio"
IDENT_REPLY = b"RFC1413 identuser='%s'"
DEBUG_NOT_VERBOSE = b"Must be VERBose to use DEBUG"
DEBUG_PASSWORD = b"Umm..  DEBUG <password>"
VRFY_WAIT_HELO = b"Waiting for HELO/EHLO command"
VRFY_252 = DEFAULT_TEXT[252]

# STARTTLS (§4.7.17; the AUTH texts are auth.py's)
TLS_ALREADY = b"TLS already active, restart not allowed!"
TLS_JUNK = b"Extra junk following 'STARTTLS' command!"
TLS_READY = b"Ready to start TLS"

# Router pass-through (§4.7.14)
ROUTER_NOT_ENABLED = b"I am sick: Interactive routing subsystem is not enabled"

# HELP (§4.7.9)
HELP_GENERAL_HEAD = (b"Copyright 1990 Rayan S. Zachariassen", b"Copyright 1991-2004 Matti Aarnio", b"")
HELP_GENERAL_TAIL = (
    b"",
    b"The normal sequence is: EHLO/HELO (MAIL RCPT+ DATA)+ QUIT.",
    b"",
    b"This mailer will always accept 8-bit and binary message data",
    b"though you are better to use MIME format!",
    b"",
    b"For local information contact: postmaster@%s",
    b"SMTP server comments and bug reports to: <zmhacks@nic.funet.fi>",
)
HELP_HELO = (
    b"EHLO your.domain.name",
    b"HELO your.domain.name",
    b"    The 'EHLO' is for Extended SMTP feature recognition, and is preferred!.",
    b"    It is polite to introduce yourself before talking.",
    b"    I will in fact ignore you until you do!",
)
HELP_LHLO = (
    b"LHLO your.domain.name",
    b"    The 'LHLO' is for RFC 2033 / LMTP session greeting.",
    b"    It is polite to introduce yourself before talking.",
    b"    I will in fact ignore you until you do!",
)
HELP_MAIL = (
    b"MAIL FROM:<sender> (ESMTP parameters)",
    b"EMAL FROM:<sender>",
    b"    Specify the originator address for the next message.",
)
HELP_RCPT = (b"RCPT TO:<recipient> (ESMTP parameters)", b"    Specify a destination address for the next message.")
HELP_CHECKED = b"    The address will be checked before it is accepted."
HELP_ANY = b"    Any address will be accepted here, but may be rejected later."
HELP_DATA = (
    b"DATA",
    b"    Start collecting the message itself.  The text data",
    b"    is terminated by a <CRLF>.<CRLF> combination.",
)
# 3.0.1 ends HELP BDAT and HELP HELP without a final line; README: every reply has one.
HELP_BDAT = (b"BDAT nnn [LAST]", b'    ESMTP "CHUNKING" service extension; See RFC 1830')
HELP_RSET = (
    b"RSET",
    b"    Reset the state of the SMTP server to be ready for",
    b"    the next message, and abort any current transaction.",
    b"",
)
HELP_NEVER = b"    This command will never be implemented."
HELP_ETRN = (
    b"    This command schedules (at least tries to) all",
    b"    outbound traffic to ``hostname'' host.",
    b"    For security reasons this server will initiate the",
    b"    SMTP-transport towards relay/recipient SMTP-server.",
)
HELP_VRFY_ON = (b"    Prints the recipients for the given address.", b"    If the address is local, it is not expanded.")
HELP_EXPN_ON = (b"    Prints the recipients for the given address.", b"    If the address is local, it is expanded.")
HELP_DISABLED = b"    This command is disabled."
HELP_NOOP = b"    This command does nothing."
HELP_QUIT = (b"QUIT", b"    Terminate the SMTP protocol conversation.")
HELP_VERB = (
    b"VERB",
    b"    Prints out the SMTP server version and copyright notice.",
    b"    This command has no other effect.",
)
HELP_TICK = (b"TICK id", b"    This BSMTP command is just reflected back at you.")
HELP_HELP = (b"HELP [command]", b"    Reminder of what the SMTP command does.")

# README "no (null) in any text": what 3.0.1 printed as "(null)"
MAIL_NESTED = b"Hello %s, Nested MAIL command"
RCPT_IN_BDAT = b"Hello %s, Waiting for BDAT command"
