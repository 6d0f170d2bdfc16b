"""Log lines: `<N>` priorities for the journal, JSON with the camera for shippers."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from relay.logs import JournalFormatter, JsonFormatter, formatter, under_journal


def record(level: int, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("ingest.source", level, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def test_journal_lines_carry_the_syslog_priority() -> None:
    journal = JournalFormatter()
    assert journal.format(record(logging.WARNING, "camera %s: offline", "gate/main")) == (
        "<4>ingest.source: camera gate/main: offline"
    )
    assert journal.format(record(logging.INFO, "x")).startswith("<6>")
    assert journal.format(record(logging.ERROR, "a\nb")) == "<3>ingest.source: a\n  b"
    assert journal.format(record(logging.DEBUG, "x")).startswith("<7>")


def test_json_lines_name_the_camera() -> None:
    shipper = JsonFormatter()
    line = json.loads(shipper.format(record(logging.WARNING, "camera %s: stalled", "gate/sub")))
    assert line["camera"] == "gate" and line["stream"] == "sub" and line["level"] == "warning"
    viewer = json.loads(shipper.format(record(logging.INFO, "viewer 1a2b: camera east/main")))
    assert viewer["camera"] == "east"
    given = json.loads(shipper.format(record(logging.INFO, "recorded", camera="yard")))
    assert given["camera"] == "yard" and given["message"] == "recorded"
    assert "camera" not in json.loads(shipper.format(record(logging.INFO, "node up")))
    event = json.loads(shipper.format(record(logging.INFO, "event alarm 1a site=v camera=e1")))
    assert event["camera"] == "e1"
    siteless = record(logging.INFO, "event lookout 1a site=v camera=%s", None)
    assert "camera" not in json.loads(shipper.format(siteless))


def test_auto_is_journal_only_when_stderr_is_the_journal_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not under_journal()
    assert not isinstance(formatter("auto"), JournalFormatter)
    st = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert under_journal()
    assert isinstance(formatter("auto"), JournalFormatter)
    other = os.stat(tmp_path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{other.st_dev}:{other.st_ino}")
    assert not under_journal(), "inherited from a service, but stderr goes elsewhere now"
