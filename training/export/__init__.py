"""Merge, GGUF writing, llama.cpp quantization and the parity gate."""
