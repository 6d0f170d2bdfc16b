"""A refused request: a status and one line saying why, never a traceback.

Any room may raise it; only web/ turns it into an HTTP answer. And the check
of the text a request carries, which refuses most: valid Unicode, no control
characters where they make no sense, bounded. JSON may carry a lone surrogate
("\\ud800") that no UTF-8 encoder (SQLite's, a log file's, another node's)
accepts: refused where it comes in, a 400, instead of failing a write later,
and with it the other writes that share its transaction.
"""

from __future__ import annotations

import re


class Refused(Exception):
    """Raised anywhere a request cannot be served; the app's middleware answers it."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


SURROGATE = re.compile("[\ud800-\udfff]")
# One-line text (names, reasons): no C0/C1 controls, no line or paragraph
# separators, no bidi overrides or isolates (they make a name read as another).
_BIDI = "\u202a-\u202e\u2066-\u2069"
_NOT_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}\ud800-\udfff]")
# Prose (a lookout's text, a note): line breaks and tabs are welcome.
_NOT_IN_PROSE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def checked_text(
    value: object,
    key: str,
    max_len: int,
    *,
    required: bool = True,
    prose: bool = False,
    any_char: bool = False,
    too_long: int = 400,
) -> str:
    """`value` if it is text a person could have meant, stripped of surrounding
    blanks unless `any_char` (a password is taken as it is, controls and all,
    but valid Unicode); otherwise Refused with a line naming `key` (never the
    value). `too_long`: the status for text past `max_len`."""
    shape = f"{key} must be text of {'1 to' if required else 'at most'} {max_len} characters"
    if not isinstance(value, str):
        raise Refused(400, shape)
    if SURROGATE.search(value):
        raise Refused(400, f"{key} must be valid Unicode text (it holds a lone surrogate)")
    if not any_char:
        if (_NOT_IN_PROSE if prose else _NOT_IN_LINE).search(value):
            allowed = " other than line breaks and tabs" if prose else ""
            raise Refused(400, f"{key} must not contain control characters{allowed}")
        value = value.strip()
    if required and not value:
        raise Refused(400, shape)
    if len(value) > max_len:
        raise Refused(too_long, shape)
    return value


def holds_surrogate(value: object) -> bool:
    """Whether any text in a parsed JSON value (keys included) holds a lone
    surrogate; walked without recursion, however deep the value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
