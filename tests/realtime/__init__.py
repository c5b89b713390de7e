"""Tests of the live side: protocol adapters, validation and the driver WebSocket codec."""
