"""The answer benchmark's metric math on hand-made answers (no model, no service)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest
from training.answer_scoring import (
    AnswerQuestion,
    AnswerRecord,
    CitedPassage,
    alternative_matches,
    is_abstention,
    load_questions,
    nugget_recall,
    percentile,
    score_answer,
    summarise,
)

PASSAGES = (
    CitedPassage("[1]", "docs/errors-points.md"),
    CitedPassage("[2]", "docs/faq.md"),
    CitedPassage("[3]", "src/pmc/point_machine.c"),
)


def _question(qid: str = "a01", answerable: bool = True) -> AnswerQuestion:
    return AnswerQuestion(
        qid=qid,
        question="E73-B when P12 fails to lock?",
        answerable=answerable,
        relevant=frozenset({"docs/errors-points.md", "src/pmc/point_machine.c"})
        if answerable
        else frozenset(),
        nuggets=((("E73-B",), ("pm_lock_timeout_ms",), ("lock detection", "lock detector")))
        if answerable
        else (),
    )


def _record(qid: str, answer: str, ttft: float = 1000.0, latency: float = 3000.0) -> AnswerRecord:
    return AnswerRecord(
        qid=qid,
        answer=answer,
        passages=PASSAGES,
        time_to_first_token_ms=ttft,
        latency_ms=latency,
        prompt_tokens=800,
        cached_prompt_tokens=200,
        completion_tokens=101,
        prefill_ms=2000.0,
        decode_ms=2000.0,
        model="m",
        prompt_version="rail_fix@2",
    )


def test_identifiers_match_exactly_and_phrases_after_normalisation() -> None:
    assert alternative_matches("Raised as E73-B [1].", "E73-B")
    assert not alternative_matches("Raised as E73-BX.", "E73-B"), "token boundary"
    assert not alternative_matches("raised as e73-b", "E73-B"), "identifiers are case-sensitive"
    assert alternative_matches("see `pm_lock_timeout_ms`", "pm_lock_timeout_ms")
    assert not alternative_matches("see pm_lock_timeout", "pm_lock_timeout_ms")
    assert alternative_matches("waits 1500\nms", "1500 ms"), "spaces in an exact match: any"
    assert alternative_matches("The Lock-Detection contacts", "lock detection contact")
    assert not alternative_matches("the unlocked detection", "lock detection"), "whole words"
    assert alternative_matches("Point.PutIntoNoEndPosition()", "Point.PutIntoNoEndPosition")


def test_nugget_recall_counts_a_nugget_once_whichever_alternative_matches() -> None:
    nuggets = [["E73-B"], ["lock detection", "lock detector"], ["2000 ms", "2 s"]]
    assert nugget_recall("E73-B: the lock detector did not close within 2 s", nuggets) == 1.0
    assert nugget_recall("E73-B only", nuggets) == pytest.approx(1 / 3)
    assert nugget_recall("nothing", nuggets) == 0.0
    assert nugget_recall("anything", []) == 1.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The documentation does not say.", True),
        ("The passages do not mention E99-Z.", True),
        ("This is not covered by the documentation.", True),
        ("Cause: the lock detection did not close [1].", False),
        ("The documentation says the timeout is 1500 ms [1].", False),
    ],
)
def test_abstention_is_recognised(answer: str, expected: bool) -> None:
    assert is_abstention(answer) is expected


def test_citation_precision_counts_wrong_and_dangling_labels() -> None:
    question = _question()
    score = score_answer(question, _record("a01", "E73-B [1], see [2] and [7]; also [1, 3]."))
    # [1] relevant, [2] not relevant, [7] names no retrieved passage, [3] relevant
    assert (score.cited, score.cited_relevant) == (4, 2)
    assert score.nugget_recall == pytest.approx(1 / 3)


def test_summary_aggregates_answerable_and_unanswerable_questions() -> None:
    questions = [_question("a01"), _question("a02"), _question("u01", answerable=False)]
    records = [
        _record("a01", "E73-B: `pm_lock_timeout_ms` lock detection [1].", ttft=1000),
        _record("a02", "Something vague [2].", ttft=3000),
        _record("u01", "The documentation does not say.", ttft=2000),
    ]
    s = summarise(questions, records)
    assert (s.questions, s.answerable, s.unanswerable, s.errors) == (3, 2, 1, 0)
    assert s.citation_rate == 1.0
    assert s.citation_precision == 0.5  # [1] relevant, [2] not
    assert s.nugget_recall == pytest.approx(0.5)  # 3/3 and 0/3
    assert s.abstention == 1.0 and s.false_abstention == 0.0
    assert s.ttft_p50_ms == 2000.0
    assert s.prefill_tokens_per_s == pytest.approx(300.0)  # (800 - 200) tokens in 2 s
    assert s.decode_tokens_per_s == pytest.approx(50.0)  # 100 tokens after the first, 2 s
    assert s.prompt_versions == ["rail_fix@2"]


def test_an_abstention_that_cites_or_a_failed_request_does_not_count() -> None:
    questions = [_question("u01", answerable=False), _question("u02", answerable=False)]
    cited = _record("u01", "The documentation does not say, but see [1].")
    s = summarise(questions, [cited])  # u02 has no record: a failed request
    assert s.abstention == 0.0 and s.errors == 1


def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_question_sets_load_and_bad_lines_say_where(tmp_path: Path) -> None:
    good = {
        "qid": "a01",
        "question": "q",
        "answerable": True,
        "relevant": ["x"],
        "nuggets": [["y"]],
    }
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"qid": "a02"}) + "\n")
    with pytest.raises(InvalidRequest, match=r"set.jsonl:3: not a judged question"):
        load_questions(path)
    path.write_text(json.dumps(good) + "\n")
    [question] = load_questions(path)
    assert question.relevant == frozenset({"x"}) and question.nuggets == (("y",),)


@pytest.mark.parametrize("name", ["answers-sample.jsonl", "answers-shared.jsonl"])
def test_shipped_question_sets_are_judged_and_large_enough(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "data" / "eval" / name
    questions = load_questions(path)
    unanswerable = [q for q in questions if not q.answerable]
    minimum = 40 if "sample" in name else 30
    assert len(questions) >= minimum and len(unanswerable) >= 10
    assert len({q.qid for q in questions}) == len(questions)
    for q in questions:
        if q.answerable:
            assert q.relevant and q.nuggets and all(q.nuggets), q.qid
        else:
            assert not q.relevant and not q.nuggets, q.qid
