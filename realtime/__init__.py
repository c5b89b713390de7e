"""The live side of lastmile: ingest, stream sharding, the WebSocket hub, protocol adapters."""
