"""The compiled rail-fix DSPy program as an analyzer: signature and module (program), its LM over
our Inference client (lm), versioned artifacts, the `dspy` analyzer (serving)."""
