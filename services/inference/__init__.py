"""Inference: streams text from a GGUF model loaded with llama.cpp (llama-cpp-python)."""
