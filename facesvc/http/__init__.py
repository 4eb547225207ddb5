"""The HTTP door: JSON for every RPC, the original design's REST API, the liveness
WebSocket and the kiosk page, all delegating to the gRPC server's one servicer.

Nothing under facesvc/engine imports this package; it converts and delegates only.
"""
