"""Camera ingest: one supervised source per camera stream, packets out.

Knows nothing of viewers, HTTP or the alert bus: `relay` imports this package,
never the reverse.
"""

from ingest.packet import MediaPacket, StreamInfo
from ingest.source import CameraSource, SourceSettings, SourceState

__all__ = ["CameraSource", "MediaPacket", "SourceSettings", "SourceState", "StreamInfo"]
