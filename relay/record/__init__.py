"""Recording: fMP4 segments from the hub, their index, retention, exports."""
