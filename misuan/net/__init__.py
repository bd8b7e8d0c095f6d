"""Channels between parties: wire format, in-memory and gRPC+mTLS transports, disclosure hook."""
