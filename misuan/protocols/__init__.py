"""Protocols: pure functions of (channel, role, data) that run the same in-memory and over gRPC."""
