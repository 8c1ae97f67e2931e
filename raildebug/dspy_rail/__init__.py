"""The rail-fix DSPy program: its LM engine over our inference service, signature, RAG module,
metric, data, compilation and versioned artifacts (served by the orchestrator's `dspy` analyzer).
"""
