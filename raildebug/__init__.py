"""RailDebug: retrieve rail control-software docs and code, stream grounded fixes over gRPC."""

__version__ = "0.1.0"
