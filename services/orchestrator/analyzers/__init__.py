"""Analyzer backends: how the orchestrator turns a grounded prompt into an answer."""
