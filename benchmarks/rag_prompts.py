"""RAG-shaped prompts for the inference benchmarks, built the way the orchestrator builds them.

The answer benchmark's questions (data/eval/answers-sample.jsonl), the passages the retriever's
core finds for them in data/sample-corpus (hybrid search, k=5), fitted to the production chat
prompt's token budget with the served model's tokenizer and rendered by the model's own chat
template: the text a Debug call sends to inference. Ingesting takes a minute, so the rendered
texts are cached under ~/.cache/raildebug/bench, keyed by everything that shapes them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.inference.chat import render_chat  # noqa: E402
from services.inference.llama_native import NativeModel  # noqa: E402
from services.inference.models import ChatTurn  # noqa: E402
from services.orchestrator.models import ContextPassage, DebugQuestion  # noqa: E402
from services.orchestrator.prompting import load_template  # noqa: E402
from training.answer_scoring import load_questions  # noqa: E402

QUESTIONS = REPO / "data" / "eval" / "answers-sample.jsonl"
CORPUS = REPO / "data" / "sample-corpus"
PROMPT = "rail_fix@3"
CACHE = Path.home() / ".cache" / "raildebug" / "bench"


class _ModelTokens:
    """The orchestrator's TokenCounter, answered by the served model's own tokenizer."""

    def __init__(self, model: NativeModel) -> None:
        self._model = model

    def count(self, texts: Sequence[str], timeout_s: float) -> list[int]:
        return [len(self._model.tokenize(text)) for text in texts]


def rag_prompts(model_path: Path, prompt: str = PROMPT) -> list[str]:
    """One rendered prompt per judged question, as the inference service receives it."""
    key = hashlib.sha256()
    for part in (QUESTIONS, REPO / "services" / "orchestrator" / "prompts" / f"{prompt}.toml"):
        key.update(part.read_bytes())
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            key.update(path.relative_to(CORPUS).as_posix().encode() + path.read_bytes())
    key.update(model_path.name.encode())
    cached = CACHE / f"rag-prompts-{key.hexdigest()[:16]}.json"
    if cached.exists():
        texts: list[str] = json.loads(cached.read_text(encoding="utf-8"))
        return texts
    texts = _build(model_path, prompt)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(texts, indent=1), encoding="utf-8")
    return texts


def _build(model_path: Path, prompt: str) -> list[str]:
    from services.retriever.evaluation import load_corpus
    from services.retriever.index import RetrievalIndex
    from services.retriever.models import SearchQuery

    template = load_template(prompt)
    model = NativeModel(model_path, 0)
    chat_template = model.meta("tokenizer.chat_template")
    bos, eos = model.special_text(model.bos), model.special_text(model.eos)
    questions = load_questions(QUESTIONS)
    texts: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="raildebug-bench-") as scratch:
            index = RetrievalIndex(Path(scratch) / "store")
            index.ingest(load_corpus(CORPUS))
            for q in tqdm(questions, desc="RAG prompts", unit="question", file=sys.stderr):
                question = DebugQuestion(q.question, q.code_snippet, q.error_log)
                hits = index.search(SearchQuery(q.question, k=5)).passages
                passages = [
                    ContextPassage(
                        id=h.chunk.id,
                        text=h.chunk.text,
                        source=h.chunk.source,
                        line_start=h.chunk.line_start,
                        line_end=h.chunk.line_end,
                        title=h.chunk.title,
                        kind=h.chunk.kind,
                        score=h.fused_score,
                    )
                    for h in hits
                ]
                fitted = template.fit_passages(passages, _ModelTokens(model))
                turns = tuple(ChatTurn(r, c) for r, c in template.render_chat(question, fitted))
                texts.append(render_chat(turns, chat_template, bos=bos, eos=eos))
    finally:
        model.close()
    return texts


if __name__ == "__main__":
    from services.inference.model_files import resolve_model_path

    path = resolve_model_path(None, Path.home() / ".local/share/raildebug/models", sys.argv[1])
    for text in rag_prompts(path):
        print(len(text), repr(text[-200:]))
