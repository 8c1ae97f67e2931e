"""Observability in one place: structured logging, metrics and tracing."""
