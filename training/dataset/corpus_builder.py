"""Builds the shipped SFT set from the sample corpus's error references.

Every answer is taken from the documented meaning, causes, diagnostic steps and fix of one error
code, so the model learns to answer from the passages it is shown (and cite them), not to invent.
Up to five questions per code: by code, by symptom in plain words, from a log line, from the
code that raises it, asking for the diagnostic steps. Whole codes are held out, so evaluation
measures answering unseen codes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from training.dataset.examples import Passage, SFTExample

_SECTION = re.compile(r"^## ([EWF]\d\d-[A-Z]) — (.+)$")
_FIELD = re.compile(
    r"^\*\*(Meaning|Typical causes|Diagnostic steps|Fix|Why it matters|Example|Note)\.\*\*\s*(.*)$"
)
_MACRO = re.compile(r'^#define\s+(ERR_\w+|WARN_\w+|\w+)\s+"([EW]\d\d-[A-Z])"')
_FUNCTION_START = re.compile(r"^(?:static\s+)?[\w\s\*]+?\b(\w+)\s*\([^;]*$")

SUBSYSTEMS = {
    "errors-points.md": ("PMC", "point machine", "P{n}"),
    "errors-track.md": ("TCM", "track circuit", "T1{n:02d}"),
    "errors-axle-counter.md": ("ACE", "axle counter", "AS2{n:02d}"),
    "errors-balise.md": ("BLI", "balise interface", "LEU{n}/BG{n}1"),
    "errors-brake.md": ("BSI", "brake interface", "LOCO-{n:02d}"),
    "errors-interlocking.md": ("IXC", "interlocking", "RT-S{n}-S{m}"),
    "errors-comms.md": ("LINK", "safety link", "OC{n}"),
    "errors-system-config.md": ("CFG", "configuration loader", "-"),
}


@dataclass(frozen=True)
class ErrorEntry:
    code: str
    title: str
    doc: str  # corpus-relative path
    line_start: int
    line_end: int
    text: str
    meaning: str
    causes: list[str]
    steps: list[str]
    fix: str


@dataclass(frozen=True)
class RaiseSite:
    source: str
    function: str
    line_start: int
    line_end: int
    text: str


def parse_error_reference(path: Path, corpus: Path) -> list[ErrorEntry]:
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if _SECTION.match(line)]
    entries = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        body = lines[start:end]
        while body and body[-1].strip() in ("", "---"):
            body.pop()
        match = _SECTION.match(lines[start])
        assert match is not None
        fields = _fields(body[1:])
        entries.append(
            ErrorEntry(
                code=match.group(1),
                title=match.group(2).strip(),
                doc=str(path.relative_to(corpus)),
                line_start=start + 1,
                line_end=start + len(body),
                text="\n".join(body),
                meaning=_sentences(_prose(fields.get("Meaning", "")), 2),
                causes=[_sentences(c, 1) for c in _items(fields.get("Typical causes", ""))],
                steps=[_sentences(s, 1) for s in _items(fields.get("Diagnostic steps", ""))],
                # Warnings document why they matter instead of a fix.
                fix="; ".join(
                    i.rstrip(".")
                    for i in _items(fields.get("Fix") or fields.get("Why it matters", ""))
                )
                + ".",
            )
        )
    return [e for e in entries if e.meaning and e.fix]


def _fields(body: list[str]) -> dict[str, str]:
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in body:
        match = _FIELD.match(line)
        if match:
            current = fields.setdefault(match.group(1), [])
            line = match.group(2)
        if current is not None:
            current.append(line)
    return {name: "\n".join(text).strip() for name, text in fields.items()}


def _prose(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"\s+", " ", text.replace("**", "")).strip()


def _sentences(text: str, count: int) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text)[:count])


def _items(text: str) -> list[str]:
    """Bullets or numbered steps become items; plain prose becomes its sentences."""
    parts = re.split(r"\n\s*(?:[-*]|\d+\.)\s+", "\n" + text)
    items = [_prose(p) for p in parts if _prose(p)]
    if len(items) == 1:
        items = [s for s in re.split(r"(?<=[.;])\s+(?=[A-Z`])", items[0]) if s]
    return items


def find_raise_sites(corpus: Path) -> dict[str, RaiseSite]:
    """Map each code to the C function that raises it (via the ERR_* macro)."""
    macros: dict[str, str] = {}
    for line in (corpus / "src/common/error_codes.h").read_text(encoding="utf-8").splitlines():
        match = _MACRO.match(line)
        if match:
            macros[match.group(1)] = match.group(2)
    sites: dict[str, RaiseSite] = {}
    for source in sorted((corpus / "src").rglob("*.c")):
        lines = source.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            for macro, code in macros.items():
                if code in sites or not re.search(rf"\b{macro}\b", line):
                    continue
                site = _enclosing_function(lines, number, str(source.relative_to(corpus)))
                if site is not None:
                    sites[code] = site
    return sites


def _enclosing_function(lines: list[str], at: int, source: str) -> RaiseSite | None:
    start = next(
        (i for i in range(at, -1, -1) if _FUNCTION_START.match(lines[i]) and lines[i][0] != " "),
        None,
    )
    if start is None:
        return None
    end = next((i for i in range(at, len(lines)) if lines[i].startswith("}")), len(lines) - 1)
    match = _FUNCTION_START.match(lines[start])
    assert match is not None
    body = lines[start : min(end + 1, start + 45)]
    return RaiseSite(source, match.group(1), start + 1, start + len(body), "\n".join(body))


def build_examples(corpus: Path, seed: int = 7) -> list[SFTExample]:
    rng = random.Random(seed)
    sites = find_raise_sites(corpus)
    examples: list[SFTExample] = []
    for doc, (subsys, noun, object_pattern) in SUBSYSTEMS.items():
        for entry in parse_error_reference(corpus / "docs" / doc, corpus):
            n = rng.randint(2, 9)
            obj = object_pattern.format(n=n, m=n + 5)
            site = sites.get(entry.code)
            examples.extend(_variants(entry, site, subsys, noun, obj, rng))
    return examples


def _variants(
    entry: ErrorEntry,
    site: RaiseSite | None,
    subsys: str,
    noun: str,
    obj: str,
    rng: random.Random,
) -> list[SFTExample]:
    doc = Passage(
        source=entry.doc,
        line_start=entry.line_start,
        line_end=entry.line_end,
        title=f"{entry.code} — {entry.title}",
        kind="doc",
        text=entry.text,
    )
    code_passage = (
        Passage(
            source=site.source,
            line_start=site.line_start,
            line_end=site.line_end,
            title=f"{site.function}()",
            kind="code",
            text=site.text,
        )
        if site
        else None
    )
    answer = _answer(entry, site)
    level = "WARN " if entry.code.startswith("W") else "ERROR"
    function = site.function if site else "-"
    log_line = (
        f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:"
        f"{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(100, 999)}Z "
        f"{rng.choice('AB')} {subsys:<4} {level} {entry.code} {obj} {function}: "
        f"{entry.title[0].lower() + entry.title[1:]}"
    )
    by_code = rng.choice(
        [
            f"What does {entry.code} mean and how do I fix it?",
            f"We keep getting {entry.code} on {obj}. Why, and what is the fix?",
            f"{entry.code} on {obj if obj != '-' else 'the controller'} — what causes it?",
        ]
    )
    symptom = rng.choice(
        [
            f"The {noun} reports: {entry.title.lower()}. What should I check?",
            f"{noun.capitalize()} problem on {obj}: {entry.title.lower()}. What is going on?",
        ]
    )
    by_log = rng.choice(
        ["This is in diag.log — what is the cause?", f"How do I clear this {subsys} error?"]
    )
    variants = [
        SFTExample(id=f"{entry.code}-code", question=by_code, passages=[doc], answer=answer),
        SFTExample(id=f"{entry.code}-symptom", question=symptom, passages=[doc], answer=answer),
        SFTExample(
            id=f"{entry.code}-log",
            question=by_log,
            error_log=log_line,
            passages=[doc],
            answer=answer,
        ),
    ]
    if code_passage and site:
        variants.append(
            SFTExample(
                id=f"{entry.code}-source",
                question=f"{site.function}() raises {entry.code} in the field. Where do I look?",
                code_snippet=site.text,
                passages=[doc, code_passage],
                answer=_answer(entry, site, code_label="[2]"),
            )
        )
    variants.append(
        SFTExample(
            id=f"{entry.code}-steps",
            question=f"Give me the diagnostic steps for {entry.code} ({entry.title}).",
            passages=[doc],
            answer=answer,
        )
    )
    return variants


def _answer(entry: ErrorEntry, site: RaiseSite | None, code_label: str = "") -> str:
    causes = "; ".join(c.rstrip(".") for c in entry.causes[:3])
    steps = " ".join(entry.steps[:3])
    lines = [f" {entry.meaning} [1]"]
    if causes:
        lines.append(f"Likely causes: {causes}. [1]")
    if code_label and site:
        lines.append(f"Raised by {site.function}() in {site.source}. {code_label}")
    if steps:
        lines.append(f"Check: {steps} [1]")
    lines.append(f"Fix: {entry.fix} [1]")
    return "\n".join(lines)


def split_heldout(
    examples: list[SFTExample], every: int = 9
) -> tuple[list[SFTExample], list[SFTExample]]:
    """Hold out every `every`-th error code entirely (all its question variants)."""
    codes = sorted({e.id.rsplit("-", 1)[0] for e in examples})
    held = set(codes[::every])
    train = [e for e in examples if e.id.rsplit("-", 1)[0] not in held]
    heldout = [e for e in examples if e.id.rsplit("-", 1)[0] in held]
    return train, heldout


def main() -> None:
    """Regenerate the shipped dataset: `python -m training.dataset.corpus_builder`."""
    from training.config import SHIPPED_DATASET
    from training.dataset.examples import write_examples

    corpus = Path(__file__).resolve().parents[2] / "data" / "sample-corpus"
    train, heldout = split_heldout(build_examples(corpus))
    print("train:", write_examples(SHIPPED_DATASET / "train.jsonl", train))
    print("heldout:", write_examples(SHIPPED_DATASET / "heldout.jsonl", heldout))


if __name__ == "__main__":
    main()
