"""The keyword leg's analyzer: identifiers indexed whole and split, prose stemmed.

Engineers search both by exact identifiers (`E73-B`, `pm_lock_timeout_ms`, `Safe_Link.Send`)
and by plain words ("lock timeout"). A word tokenizer that splits `pm_lock_timeout_ms` into
pieces loses the exact match; one that keeps it whole loses "lock". So every identifier is
emitted whole (lower-cased, never stemmed) *and* as its stemmed parts, and prose words are
stemmed with Snowball. Documents and queries go through the same function, so BM25 sees the
same terms on both sides; the store indexes the terms as a whitespace-separated column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

import snowballstemmer

# A word: alphanumeric runs joined by identifier connectors (snake_case, dotted, hyphenated
# codes, C++ scopes). A connector at either end is not part of it ("pm_throw()." -> pm_throw).
_WORD = re.compile(r"[A-Za-z0-9]+(?:(?:::|[_.\-])[A-Za-z0-9]+)*")
_SCOPE = re.compile(r"::|\.")
_JOINER = re.compile(r"[_\-]")
# CamelCase boundaries: "BaliseDecoder" -> Balise|Decoder, "pmLock2" -> pm|Lock2; letters and
# the digits after them stay together ("E73", "P12").
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+[A-Za-z]*")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_INNER_CAPITAL = re.compile(r"[a-z0-9][A-Z]")

# Function words only: domain words such as "system", "not" or "fail" carry meaning here.
_STOP_WORDS_TEXT = """
    a an and are as at be been being but by can could did do does doing for from had has have
    having he her here hers him his how i if in into is it its itself me my of off on once only
    or our ours out over own she should so some such than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours
    aren couldn didn doesn don hadn hasn haven isn shouldn wasn weren won wouldn
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_STEMMER = snowballstemmer.stemmer("english")
_MIN_PART_CHARS = 2


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball English stem of a lower-case word (cached: vocabularies are small)."""
    result: str = _STEMMER.stemWord(word)
    return result


def is_identifier(word: str) -> bool:
    """Whether a word is code-like: joined parts, inner capitals or letters mixed with digits.

    Plain prose ("Packet", "ETCS") and bare numbers ("120") are not identifiers.
    """
    if not _HAS_LETTER.search(word):
        return False
    if _SCOPE.search(word) or _JOINER.search(word):
        return True
    if _INNER_CAPITAL.search(word):
        return True
    return any(ch.isdigit() for ch in word)


def words(text: str) -> Iterator[str]:
    """The raw words of a text, in order, as written (case kept)."""
    for match in _WORD.finditer(text):
        yield match.group(0)


def identifiers(text: str) -> list[str]:
    """Distinct identifiers of a text, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in words(text):
        if is_identifier(word):
            seen.setdefault(word.lower(), None)
    return list(seen)


def identifier_share(text: str) -> float:
    """Fraction of a text's content words that are identifiers (0 for prose, 1 for "E73-B").

    A sentence-embedding model has little to say about a bare error code or config key, so
    the hybrid search leans on the keyword leg in proportion to this share.
    """
    content = [w for w in words(text) if w.lower() not in STOP_WORDS]
    if not content:
        return 0.0
    return sum(1 for w in content if is_identifier(w)) / len(content)


def _parts(word: str) -> Iterator[str]:
    """Split an identifier down to its words: scopes, then joiners, then CamelCase."""
    for segment in _SCOPE.split(word):
        for piece in _JOINER.split(segment):
            camel = _CAMEL.findall(piece)
            yield from camel if len(camel) > 1 else (piece,)


def _part_term(part: str) -> str | None:
    lower = part.lower()
    if len(lower) < _MIN_PART_CHARS or lower in STOP_WORDS:
        return None
    return stem(lower) if lower.isalpha() else lower


def analyze(text: str) -> list[str]:
    """Index/query terms of a text: identifiers whole and split, prose stemmed, in order.

    >>> analyze("E73-B: pm_lock_timeout_ms expired while locking")
    ['e73-b', 'e73', 'pm_lock_timeout_ms', 'pm', 'lock', 'timeout', 'ms', 'expir', 'lock']
    """
    terms: list[str] = []
    for word in words(text):
        if is_identifier(word):
            terms.append(word.lower())
            if _SCOPE.search(word):  # "Safe_Link.Send": each scope segment is also whole
                terms.extend(
                    segment.lower()
                    for segment in _SCOPE.split(word)
                    if is_identifier(segment) and segment.lower() != word.lower()
                )
            for part in _parts(word):
                term = _part_term(part)
                if term is not None and term != terms[-1]:
                    terms.append(term)
        else:
            lower = word.lower()
            if lower in STOP_WORDS or (len(lower) == 1 and lower.isalpha()):
                continue
            terms.append(stem(lower) if lower.isalpha() else lower)
    return terms


def analyze_all(texts: Iterable[str]) -> str:
    """Terms of several texts (title, body) as the whitespace-joined string the index stores."""
    return " ".join(term for text in texts for term in analyze(text))


def mentions(text: str, identifier: str) -> bool:
    """Whether `text` contains `identifier` as a whole word (case-insensitive)."""
    pattern = _mention_pattern(identifier.lower())
    return pattern.search(text) is not None


@lru_cache(maxsize=4096)
def _mention_pattern(identifier: str) -> re.Pattern[str]:
    # Not preceded or followed by another identifier character (so "E73-B" does not match
    # inside "E73-BX" and "pm_lock" does not match inside "pm_lock_timeout_ms").
    return re.compile(
        r"(?<![A-Za-z0-9_])" + re.escape(identifier) + r"(?![A-Za-z0-9_]|[.\-:][A-Za-z0-9])",
        re.IGNORECASE,
    )
