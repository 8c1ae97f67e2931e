"""Orchestrator: retrieve context, build the prompt, stream a grounded fix to the caller."""
