"""The compiled rail-fix DSPy program as an analyzer: signature and module, its LM over our
inference client, versioned artifacts, streaming serving."""
