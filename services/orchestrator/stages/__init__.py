"""The stages of a Debug request, each a small unit over `graph.DebugState`."""
