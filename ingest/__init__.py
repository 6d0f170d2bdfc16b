"""Camera ingest: one supervised source per camera stream, packets out.

Knows nothing of viewers, HTTP or the alert bus: `relay` imports this package,
never the reverse. Import from the modules (`ingest.source`, `ingest.packet`,
`ingest.state`): this package itself loads nothing, so naming a state or a packet
never loads PyAV.
"""
