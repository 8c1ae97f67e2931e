"""Retriever: hybrid BM25 + vector search over rail documentation and source code."""
