"""Log lines for the journal, for a terminal, or as JSON for log shippers.

`journal`: `<6>relay.app: message`. systemd reads the `<N>` prefix as the line's
priority (syslog levels: 3 error, 4 warning, 6 info, 7 debug) and stamps the time
itself. `text`: a timestamp, level, logger and message, for a terminal. `json`:
one object a line with `time`, `level`, `logger`, `message`, and `camera` (and
`stream`) for every line about a camera. `auto` (the default) is `journal` when
stderr is the journal's stream (systemd says so in $JOURNAL_STREAM), else `text`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Literal

LogFormat = Literal["auto", "journal", "text", "json"]
FORMATS: tuple[LogFormat, ...] = ("auto", "journal", "text", "json")
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
# Lines about a camera say "camera ID:", "camera ID/STREAM" (STYLE.md) or "camera=ID";
# a record can also carry `extra={"camera": ...}`.
CAMERA = re.compile(r"\bcamera[ =](?!None\b)([A-Za-z0-9][A-Za-z0-9_-]{0,63})(?:/(main|sub))?\b")


def camera_of(record: logging.LogRecord) -> tuple[str | None, str | None]:
    given = getattr(record, "camera", None)
    if isinstance(given, str):
        return given, getattr(record, "stream", None)
    found = CAMERA.search(record.getMessage())
    return (found.group(1), found.group(2)) if found else (None, None)


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITY.get(record.levelno, 7 if record.levelno < logging.INFO else 6)
        # One entry per record: a traceback's lines go with it, not as lines of their own.
        return f"<{priority}>" + super().format(record).replace("\n", "\n  ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        camera, stream = camera_of(record)
        if camera is not None:
            line["camera"] = camera
            if stream is not None:
                line["stream"] = stream
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def under_journal() -> bool:
    """stderr is connected to the journal (systemd(1), $JOURNAL_STREAM: DEVICE:INODE)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def formatter(kind: LogFormat) -> logging.Formatter:
    if kind == "auto":
        kind = "journal" if under_journal() else "text"
    if kind == "journal":
        return JournalFormatter()
    if kind == "json":
        return JsonFormatter()
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    text.converter = time.localtime
    return text


def configure(kind: LogFormat, level: str) -> None:
    """Every log line to stderr, which systemd sends to the journal (as it does stdout)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
