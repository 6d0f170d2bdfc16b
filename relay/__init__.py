"""villagewatch relay: serves what ingest takes in (hub, WebRTC, API, pages)."""
