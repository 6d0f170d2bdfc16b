"""Builds relay/webrtc/_sendpath.c, the compiled send path, next to its source.

Run by scripts/setup.sh with the virtualenv's Python; it needs a C compiler and
Python's headers (Debian's gcc and python3-dev; the python images have both).
Without them the node sends from Python (relay/webrtc/sendpath.py says which).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "relay" / "webrtc" / "_sendpath.c"


def target() -> Path:
    return SOURCE.with_name("_sendpath" + sysconfig.get_config_var("EXT_SUFFIX"))


def build() -> Path | None:
    """Builds it if it is not built from the source as it is; the file if it built."""
    out = target()
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return None
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    command = [*cc, "-O2", "-Wall", "-Werror", "-fPIC", "-shared", f"-I{include}"]
    subprocess.run([*command, str(SOURCE), "-o", str(out)], check=True)
    return out


if __name__ == "__main__":
    try:
        built = build()
        if built is not None:
            print(f"setup: built the compiled send path, {built.name}")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"setup: the compiled send path was not built ({exc}); the node sends from Python")
        sys.exit(0)
