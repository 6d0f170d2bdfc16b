"""The compiled send path (relay/webrtc/_sendpath.c, see relay/webrtc/srtp.py).

Everything else is in pyproject.toml. The extension is optional: without a C
compiler and Python's headers the package installs without it, and the node sends
from Python (a slower path the tests also run).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "relay.webrtc._sendpath",
            ["relay/webrtc/_sendpath.c", "relay/webrtc/_srtp_protect.c"],
            depends=["relay/webrtc/_srtp_protect.h"],
            optional=True,
        )
    ]
)
