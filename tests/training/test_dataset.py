"""The shipped SFT set is grounded in the corpus and rendered exactly as the orchestrator
renders its prompt; feedback imports keep only well-rated answers of the same template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest
from services.orchestrator.prompting import load_template
from training.config import SHIPPED_DATASET
from training.dataset.examples import read_examples
from training.dataset.feedback_import import import_feedback
from training.dataset.formatting import IGNORE, collate, render_prompt, tokenize_example

CORPUS = Path(__file__).resolve().parents[2] / "data" / "sample-corpus"


def test_shipped_set_is_large_grounded_and_split_by_code() -> None:
    train = read_examples(SHIPPED_DATASET / "train.jsonl")
    heldout = read_examples(SHIPPED_DATASET / "heldout.jsonl")
    assert len(train) + len(heldout) >= 200
    codes = {e.id.rsplit("-", 1)[0] for e in train}
    assert heldout and not codes & {e.id.rsplit("-", 1)[0] for e in heldout}
    assert any(e.code_snippet for e in train) and any(e.error_log for e in train)
    for example in train + heldout:
        for passage in example.passages:
            lines = (CORPUS / passage.source).read_text(encoding="utf-8").splitlines()
            quoted = "\n".join(lines[passage.line_start - 1 : passage.line_end])
            assert passage.text in quoted, f"{example.id}: passage not in {passage.source}"
        assert "Fix:" in example.answer and "[1]" in example.answer


def test_prompt_is_the_orchestrators_template() -> None:
    example = read_examples(SHIPPED_DATASET / "heldout.jsonl")[0]
    template = load_template("rail_fix@1")
    prompt = render_prompt(template, example)
    expected = template.render(
        example.debug_question(), template.fit_passages(example.context_passages())
    )
    assert prompt == expected
    assert prompt.endswith("### Answer\nCause: ")
    assert example.passages[0].text.splitlines()[0] in prompt


class _CharTokenizer:
    """Characters as tokens: enough to check boundaries and masking."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) + 3 for c in text]}


def test_answer_tokens_follow_the_prompt_and_only_they_are_labelled() -> None:
    example = read_examples(SHIPPED_DATASET / "heldout.jsonl")[0]
    template = load_template("rail_fix@1")
    tokenized = tokenize_example(_CharTokenizer(), template, example, max_seq_len=100_000)
    prompt = render_prompt(template, example)
    assert tokenized.answer_start == len(prompt) + 1  # BOS + prompt characters
    assert tokenized.input_ids[-1] == 2
    short = tokenize_example(_CharTokenizer(), template, example, max_seq_len=300)
    batch = collate([tokenized, short], pad_id=0)
    assert batch.answer_tokens == tokenized.answer_tokens + short.answer_tokens
    assert int(batch.labels[1, : batch.labels.shape[1] - short.answer_tokens].ne(IGNORE).sum()) == 0
    assert len(short.input_ids) == 300 and short.input_ids[0] == 1


def test_feedback_import_keeps_well_rated_answers_of_the_same_template(tmp_path: Path) -> None:
    rows = [
        {
            "question": "E73-B on P4?",
            "answer": "Cause: lock contact late [1]\nFix: adjust [1]",
            "score": 0.9,
            "prompt_version": "rail_fix@1",
            "context": [
                {
                    "source": "docs/errors-points.md",
                    "line_start": 1,
                    "line_end": 3,
                    "title": "E73-B",
                    "kind": "doc",
                    "text": "lock timeout",
                    "id": "x",
                }
            ],
        },
        {
            "question": "bad answer",
            "answer": "no idea",
            "score": -1.0,
            "prompt_version": "rail_fix@1",
        },
        {"question": "other template", "answer": "x", "score": 1.0, "prompt_version": "rail_fix@9"},
    ]
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    examples, report = import_feedback(path, 0.5, "rail_fix@1")
    assert [e.question for e in examples] == ["E73-B on P4?"]
    assert examples[0].answer.startswith(" lock contact late")
    assert examples[0].passages[0].text == "lock timeout"
    assert report.skipped == {"score below threshold": 1, "other prompt template": 1}
    path.write_text('{"question": "no score"}\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match=r"feedback\.jsonl:1"):
        import_feedback(path, 0.5, "rail_fix@1")
