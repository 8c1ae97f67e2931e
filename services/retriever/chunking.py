"""Splits a source document into searchable chunks with exact 1-based line ranges.

Chunks follow the structure an engineer navigates by: headings in docs (the title is the heading
path, "Errors > E73-B"), top-level blocks in code (a function together with the comment above
it), line windows in plain text. Everything works on whole lines, so every chunk's `text` is
exactly lines `line_start..line_end` of the source and a citation can point at them.

Ids are uuid5 over (source, position, sha256(text)): re-chunking unchanged input gives the same
ids, and any change to a chunk's text gives it a new id.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from raildebug.errors import InvalidRequest
from services.retriever.models import Chunk, SourceDocument
from services.retriever.sources import KIND_CODE, KIND_DOC, PAGE_BREAK, resolve_kind_language

# Bump when chunk boundaries change, so that re-ingesting unchanged files rewrites them.
CHUNKER_VERSION = "2"
CHUNK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://raildebug.invalid/retriever/chunk")

DOC_MAX_CHARS = 1200
TEXT_MAX_CHARS = 1200
CODE_MAX_CHARS = 1500
OVERLAP_LINES = 2
TITLE_SEPARATOR = " > "
_MAX_TITLE_NAMES = 3


@dataclass(frozen=True)
class _Span:
    """Lines [start, end) of the document (0-based, end exclusive) and the chunk title."""

    start: int
    end: int
    title: str = ""


def chunk_id(source: str, position: int, text: str) -> str:
    """Stable id: same source, position and text give the same id on every run."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{source}#{position}#{digest}"))


def split_lines(content: str) -> list[str]:
    """Lines as editors count them: only "\\n" ends a line (unlike str.splitlines)."""
    lines = content.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def chunk_document(doc: SourceDocument) -> list[Chunk]:
    """Chunk one document by its kind; raises InvalidRequest for an empty document."""
    if not doc.content.strip():
        raise InvalidRequest("empty document: the file is empty or only whitespace; remove it")
    kind, language = resolve_kind_language(doc)
    lines = split_lines(doc.content)
    if kind == KIND_DOC and language == "markdown":
        spans = _section_spans(lines, _markdown_headings(lines), DOC_MAX_CHARS)
    elif kind == KIND_DOC and language == "rst":
        spans = _section_spans(lines, _rst_headings(lines), DOC_MAX_CHARS)
    elif kind == KIND_DOC and language == "pdf":
        spans = _page_spans(lines, DOC_MAX_CHARS)
    elif kind == KIND_CODE:
        spans = _code_spans(lines, language)
    else:
        limit = DOC_MAX_CHARS if kind == KIND_DOC else TEXT_MAX_CHARS
        spans = [_Span(s, e) for s, e in _windows(lines, 0, len(lines), limit)]
    chunks: list[Chunk] = []
    for span in spans:
        trimmed = _trim(lines, span.start, span.end)
        if trimmed is None:
            continue
        start, end = trimmed
        text = "\n".join(lines[start:end])
        chunks.append(
            Chunk(
                id=chunk_id(doc.source, len(chunks), text),
                source=doc.source,
                text=text,
                line_start=start + 1,
                line_end=end,
                kind=kind,
                language=language,
                title=span.title or doc.title.strip(),
                metadata=dict(doc.metadata),
            )
        )
    return chunks


# --- shared line helpers ---------------------------------------------------------------------


def _is_blank(line: str) -> bool:
    return not line.strip()


def _trim(lines: Sequence[str], start: int, end: int) -> tuple[int, int] | None:
    """Drop blank lines at both ends; None when nothing is left."""
    while start < end and _is_blank(lines[start]):
        start += 1
    while end > start and _is_blank(lines[end - 1]):
        end -= 1
    return (start, end) if start < end else None


def _chars(lines: Sequence[str], start: int, end: int) -> int:
    return sum(len(lines[i]) + 1 for i in range(start, end))


def _windows(
    lines: Sequence[str], start: int, end: int, max_chars: int, overlap: int = OVERLAP_LINES
) -> list[tuple[int, int]]:
    """Cover lines [start, end) with windows of at most ~max_chars, overlapping by whole lines.

    A window prefers to end at a blank line (a paragraph break) in its second half. A single
    line longer than max_chars becomes a window of its own: lines are never split, so line
    numbers stay exact. Each window after the first repeats up to `overlap` lines of the one
    before, but always adds at least one new line.
    """
    trimmed = _trim(lines, start, end)
    if trimmed is None:
        return []
    start, end = trimmed
    prefix = [0]  # prefix[i - start]: characters of lines[start:i], newlines included
    for i in range(start, end):
        prefix.append(prefix[-1] + len(lines[i]) + 1)

    def chars(a: int, b: int) -> int:
        return prefix[b - start] - prefix[a - start]

    if chars(start, end) <= max_chars:
        return [(start, end)]
    windows: list[tuple[int, int]] = []
    s = start
    while True:
        e = s + 1
        while e < end and chars(s, e + 1) <= max_chars:
            e += 1
        if e < end:
            for j in range(e - 1, s, -1):
                if chars(s, j) < max_chars // 2:
                    break
                if _is_blank(lines[j]):
                    e = j
                    break
        windows.append((s, e))
        if e >= end:
            return windows
        nxt = max(e - overlap, s + 1)
        while nxt < e and chars(nxt, e + 1) > max_chars:
            nxt += 1
        while nxt < e and _is_blank(lines[nxt]):
            nxt += 1
        s = nxt


# --- docs: PDF pages -------------------------------------------------------------------------


def _page_spans(lines: Sequence[str], max_chars: int) -> list[_Span]:
    """One section per extracted PDF page (split at PAGE_BREAK lines), titled "page N"."""
    spans: list[_Span] = []
    start, page = 0, 1
    for i in range(len(lines) + 1):
        if i == len(lines) or lines[i] == PAGE_BREAK:
            windows = _windows(lines, start, i, max_chars)
            spans.extend(_Span(s, e, f"page {page}") for s, e in windows)
            start, page = i + 1, page + 1
    return spans


# --- docs: markdown and reStructuredText -----------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    start: int  # first line of the heading (the overline for rst)
    body: int  # first line after the heading
    level: int
    text: str


_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[>|]|[-+*] |\d+[.)] ))")


def _markdown_headings(lines: Sequence[str]) -> list[_Heading]:
    """ATX (# ...) and setext (=== / ---) headings, ignoring fenced code and front matter."""
    headings: list[_Heading] = []
    i = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for j in range(1, len(lines)):
            if lines[j].strip() in ("---", "..."):
                i = j + 1
                break
    fence: str | None = None
    while i < len(lines):
        line = lines[i]
        fence_match = _MD_FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and (
                    len(fence_match.group(1)) >= len(fence)
                    and not line[fence_match.end() :].strip()
                )
            ):
                fence = None
            i += 1
            continue
        if fence_match:
            fence = fence_match.group(1)
            i += 1
            continue
        atx = _MD_ATX.match(line)
        if atx:
            headings.append(_Heading(i, i + 1, len(atx.group(1)), (atx.group(2) or "").strip()))
            i += 1
            continue
        if (
            i + 1 < len(lines)
            and not _is_blank(line)
            and (i == 0 or _is_blank(lines[i - 1]))
            and not _MD_NOT_PARAGRAPH.match(line)
        ):
            setext = _MD_SETEXT.match(lines[i + 1])
            if setext:
                level = 1 if setext.group(1)[0] == "=" else 2
                headings.append(_Heading(i, i + 2, level, line.strip()))
                i += 2
                continue
        i += 1
    return headings


_RST_ADORNMENT = re.compile(r"""^([=\-`:'"~^_*+#<>.!$%&(),/;?@\[\]\\{|}])\1+[ \t]*$""")


def _rst_headings(lines: Sequence[str]) -> list[_Heading]:
    """Underlined (optionally overlined) titles; levels in order of first appearance."""
    headings: list[_Heading] = []
    styles: dict[tuple[str, bool], int] = {}
    i = 0
    while i + 1 < len(lines):
        title, under = lines[i], lines[i + 1]
        adornment = _RST_ADORNMENT.match(under)
        if (
            adornment
            and not _is_blank(title)
            and not _RST_ADORNMENT.match(title)
            and len(under.rstrip()) >= min(len(title.strip()), 3)
        ):
            char = adornment.group(1)
            over = (
                i > 0
                and lines[i - 1].strip()[:1] == char
                and bool(_RST_ADORNMENT.match(lines[i - 1]))
            )
            if over or i == 0 or _is_blank(lines[i - 1]):
                level = styles.setdefault((char, over), len(styles) + 1)
                headings.append(_Heading(i - 1 if over else i, i + 2, level, title.strip()))
                i += 2
                continue
        i += 1
    return headings


def _section_spans(
    lines: Sequence[str], headings: Sequence[_Heading], max_chars: int
) -> list[_Span]:
    """One span per section, titled with its heading path; long sections are windowed.

    A heading with no body of its own ("# Errors" directly followed by "## E73-B") is kept
    with the next section instead of becoming a chunk that says nothing.
    """
    sections: list[_Span] = []
    if not headings or headings[0].start > 0:
        sections.append(_Span(0, headings[0].start if headings else len(lines), ""))
    stack: list[tuple[int, str]] = []
    carried_start: int | None = None
    for index, heading in enumerate(headings):
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        stack.append((heading.level, heading.text))
        end = headings[index + 1].start if index + 1 < len(headings) else len(lines)
        start = heading.start if carried_start is None else carried_start
        if index + 1 < len(headings) and _trim(lines, heading.body, end) is None:
            carried_start = start
            continue
        carried_start = None
        title = TITLE_SEPARATOR.join(text for _, text in stack if text)
        sections.append(_Span(start, end, title))
    spans: list[_Span] = []
    for section in sections:
        for s, e in _windows(lines, section.start, section.end, max_chars):
            spans.append(_Span(s, e, section.title))
    return spans


# --- code ------------------------------------------------------------------------------------

_BRACE_LANGUAGES = frozenset({"c", "cpp", "java", "rust", "go", "javascript", "typescript"})

# A "{" opened by one of these does not make its contents nested for chunking purposes, so the
# methods of a class or the functions of a namespace still split into their own blocks.
_TRANSPARENT_CONTAINERS: dict[str, re.Pattern[str]] = {
    "c": re.compile(r'\bextern\s+"C"'),
    "cpp": re.compile(r'\bnamespace\b|\bextern\s+"C"|\bclass\b'),
    "java": re.compile(r"\b(?:class|interface|enum|record)\b"),
    "rust": re.compile(r"\b(?:impl|trait|mod)\b"),
    "javascript": re.compile(r"\bclass\b"),
    "typescript": re.compile(r"\b(?:class|namespace|module)\b"),
}

# For indentation-structured languages: a definition that may start a block when indented.
_INDENTED_STARTERS: dict[str, re.Pattern[str]] = {
    "python": re.compile(r"(?:async\s+def|def|class)\b|@"),
    "ada": re.compile(
        r"(?:overriding|not\s+overriding|procedure|function|package|task|protected|entry)\b",
        re.IGNORECASE,
    ),
}
_MAX_STARTER_INDENT = 4

_HASH_COMMENT = re.compile(r"^\s*#")
_LINE_COMMENTS: dict[str, re.Pattern[str]] = {
    "python": _HASH_COMMENT,
    "shell": _HASH_COMMENT,
    "yaml": _HASH_COMMENT,
    "toml": _HASH_COMMENT,
    "ini": re.compile(r"^\s*[#;]"),
    "ada": re.compile(r"^\s*--"),
}

_CHAR_LITERAL = re.compile(r"'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.))'")
_NOT_NAMES = frozenset(
    {
        "if", "for", "while", "switch", "return", "else", "do", "sizeof", "case", "catch",
        "new", "delete", "throw", "typeof", "defined", "elif", "until", "foreach", "when",
    }
)  # fmt: skip

_C_LIKE_TITLES = (
    re.compile(r"^\s*#\s*define\s+(\w+)"),
    re.compile(r"^\s*(?:typedef\s+)?(?:struct|union|enum(?:\s+class)?|class)\s+(\w+)"),
    re.compile(r"^\s*namespace\s+([\w:]+)"),
    re.compile(r"^\s*(?:[\w\*&:<>,~\[\]]+\s+)*?[\*&\s]*([A-Za-z_~][\w:~]*)\s*\("),
)
_C_TYPEDEF_END = re.compile(r"^\s*}\s*(\w+)\s*(?:\[[^\]]*\]\s*)?;")
_TITLE_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "c": _C_LIKE_TITLES,
    "cpp": _C_LIKE_TITLES,
    "python": (re.compile(r"^\s*(?:async\s+def|def|class)\s+(\w+)"),),
    "java": (
        re.compile(
            r"^\s*(?:(?:public|private|protected|static|final|abstract|sealed|strictfp)\s+)*"
            r"(?:class|interface|enum|record|@interface)\s+(\w+)"
        ),
        re.compile(r"^\s*(?:[\w<>\[\],.?@]+\s+)+(\w+)\s*\("),
        re.compile(
            r"^\s*(?:(?:public|private|protected|static|final|volatile|transient)\s+)+"
            r"[\w<>\[\],.? ]+?\s+(\w+)\s*[=;]"
        ),
    ),
    "rust": (
        re.compile(
            r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe|extern\s+\"[^\"]*\")\s+)*"
            r"fn\s+(\w+)"
        ),
        re.compile(
            r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|trait|union|mod|type|const|static)\s+"
            r"(\w+)"
        ),
        re.compile(r"^\s*impl(?:<[^>]*>)?\s+(?:[\w:<>]+\s+for\s+)?([\w:]+)"),
        re.compile(r"^\s*macro_rules!\s*(\w+)"),
    ),
    "go": (
        re.compile(r"^func\s+(?:\([^)]*\)\s*)?(\w+)"),
        re.compile(r"^(?:type|var|const)\s+(\w+)"),
    ),
    "javascript": (
        re.compile(r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(\w+)"),
        re.compile(r"^\s*(?:export\s+)?(?:default\s+)?class\s+(\w+)"),
        re.compile(r"^\s*(?:export\s+)?(?:const|let|var)\s+(\w+)\s*="),
        re.compile(r"^\s+(?:(?:static|async|get|set)\s+)*(\w+)\s*\([^)]*\)\s*\{"),
    ),
    "typescript": (
        re.compile(r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*(\w+)"),
        re.compile(r"^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+(\w+)"),
        re.compile(r"^\s*(?:export\s+)?(?:declare\s+)?(?:interface|type|enum|namespace)\s+(\w+)"),
        re.compile(r"^\s*(?:export\s+)?(?:const|let|var)\s+(\w+)\s*[:=]"),
        re.compile(
            r"^\s+(?:(?:public|private|protected|static|async|readonly|get|set)\s+)*"
            r"(\w+)\s*\([^)]*\)\s*(?::[^{]*)?\{"
        ),
    ),
    "ada": (
        re.compile(
            r"^\s*(?:overriding\s+|not\s+overriding\s+)?(?:procedure|function|entry)\s+([\w.]+)",
            re.IGNORECASE,
        ),
        re.compile(r"^\s*(?:package|task|protected)(?:\s+body)?\s+([\w.]+)", re.IGNORECASE),
        re.compile(r"^\s*(?:sub)?type\s+(\w+)", re.IGNORECASE),
    ),
    "shell": (
        re.compile(r"^\s*function\s+([\w.:-]+)"),
        re.compile(r"^\s*([\w.:-]+)\s*\(\)"),
    ),
    "yaml": (re.compile(r"^([\w.-]+)\s*:"),),
    "toml": (re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+"),),
    "ini": (re.compile(r"^\s*\[\s*([^\]]+?)\s*\]"),),
    "json": (re.compile(r'^(?: {2}|\t)"([^"]+)"\s*:'),),
}


@dataclass(frozen=True)
class _LineInfo:
    """Per-line structure: nesting depth at the line start, and whether it is only comment."""

    depth: list[int]
    comment: list[bool]


def _scan_braces(lines: Sequence[str], transparent: re.Pattern[str] | None) -> _LineInfo:
    """Brace depth outside strings and comments (good enough for C-like code, not a parser)."""
    depth: list[int] = []
    comment: list[bool] = []
    stack: list[bool] = []  # True: a transparent container
    in_block_comment = False
    backtick = False
    previous_code = ""
    for line in lines:
        depth.append(sum(1 for is_transparent in stack if not is_transparent))
        has_code = False
        quote = "`" if backtick else ""
        i = 0
        while i < len(line):
            ch = line[i]
            if in_block_comment:
                if line.startswith("*/", i):
                    in_block_comment = False
                    i += 2
                else:
                    i += 1
                continue
            if quote:
                if ch == "\\":
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
                i += 1
                continue
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                in_block_comment = True
                i += 2
                continue
            if ch.isspace():
                i += 1
                continue
            has_code = True
            if ch in '"`':
                quote = ch
            elif ch == "'":
                literal = _CHAR_LITERAL.match(line, i)
                if literal:
                    i = literal.end()
                    continue
            elif ch == "{":
                head = line[:i] if line[:i].strip() else previous_code
                stack.append(transparent is not None and bool(transparent.search(head)))
            elif ch == "}" and stack:
                stack.pop()
            i += 1
        backtick = quote == "`"  # only template literals span lines
        comment.append(not has_code and not _is_blank(line))
        if has_code:
            previous_code = line
    return _LineInfo(depth, comment)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _line_info(lines: Sequence[str], language: str) -> _LineInfo:
    if language in _BRACE_LANGUAGES:
        return _scan_braces(lines, _TRANSPARENT_CONTAINERS.get(language))
    pattern = _LINE_COMMENTS.get(language)
    comment = [bool(pattern and pattern.match(line)) for line in lines]
    return _LineInfo([0] * len(lines), comment)


def _starts_block(lines: Sequence[str], index: int, language: str, info: _LineInfo) -> bool:
    """Whether a line after blank line(s) begins a new top-level block."""
    line = lines[index]
    if language in _BRACE_LANGUAGES:
        return info.depth[index] == 0
    indent = _indent(line)
    if indent == 0:
        return True
    starter = _INDENTED_STARTERS.get(language)
    return bool(starter and indent <= _MAX_STARTER_INDENT and starter.match(line.lstrip()))


def _top_level_blocks(
    lines: Sequence[str], language: str, info: _LineInfo
) -> list[tuple[int, int]]:
    """Blank-line separated blocks, split only where a new top-level definition can start."""
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    last_code = -1
    for i, line in enumerate(lines):
        if _is_blank(line):
            continue
        if start is None:
            start = i
        elif last_code < i - 1 and _starts_block(lines, i, language, info):
            blocks.append((start, last_code + 1))
            start = i
        last_code = i
    if start is not None:
        blocks.append((start, last_code + 1))
    # A comment block separated from the code after it by a blank line still documents it.
    merged: list[tuple[int, int]] = []
    carried: int | None = None
    for index, (s, e) in enumerate(blocks):
        s = s if carried is None else carried
        if index + 1 < len(blocks) and all(
            info.comment[j] for j in range(s, e) if not _is_blank(lines[j])
        ):
            carried = s
            continue
        carried = None
        merged.append((s, e))
    return merged


def _names(lines: Sequence[str], start: int, end: int, language: str, info: _LineInfo) -> list[str]:
    """Names of the definitions that start at top level within lines [start, end)."""
    patterns = _TITLE_PATTERNS.get(language, ())
    names: list[str] = []
    for i in range(start, end):
        line = lines[i]
        if language in ("c", "cpp") and info.depth[i] == 1:
            closing = _C_TYPEDEF_END.match(line)  # "} pm_inputs_t;" names an anonymous struct
            if closing and closing.group(1) not in names:
                names.append(closing.group(1))
            continue
        if info.comment[i] or info.depth[i] > 0 or _is_blank(line):
            continue
        if language == "python" and _indent(line) > _MAX_STARTER_INDENT:
            continue
        for pattern in patterns:
            match = pattern.match(line)
            if match and match.group(1) not in _NOT_NAMES:
                if match.group(1) not in names:
                    names.append(match.group(1))
                break
    return names


def _title(names: Sequence[str]) -> str:
    title = ", ".join(names[:_MAX_TITLE_NAMES])
    return title + ", ..." if len(names) > _MAX_TITLE_NAMES else title


def _code_spans(lines: Sequence[str], language: str) -> list[_Span]:
    """Pack small top-level blocks up to CODE_MAX_CHARS; window the blocks that are larger.

    The last window of a large block stays open for packing, so a short trailer after it
    (`#endif`, `end Package;`) joins it instead of becoming a chunk of its own.
    """
    info = _line_info(lines, language)
    spans: list[_Span] = []
    pack: tuple[int, int] | None = None
    lead: list[str] = []  # name of the block whose tail the open pack starts with

    def flush() -> None:
        nonlocal pack
        if pack is not None:
            names = lead + [n for n in _names(lines, *pack, language, info) if n not in lead]
            spans.append(_Span(pack[0], pack[1], _title(names)))
            pack = None
        lead.clear()

    for start, end in _top_level_blocks(lines, language, info):
        if _chars(lines, start, end) > CODE_MAX_CHARS:
            flush()
            block_names = _names(lines, start, end, language, info)
            windows = _windows(lines, start, end, CODE_MAX_CHARS)
            for s, e in windows[:-1]:
                window_names = _names(lines, s, e, language, info)
                spans.append(_Span(s, e, _title(window_names or block_names[:1])))
            pack = windows[-1]
            if not _names(lines, *pack, language, info):
                lead.extend(block_names[:1])
        elif pack is not None and _chars(lines, pack[0], end) > CODE_MAX_CHARS:
            flush()
            pack = (start, end)
        else:
            pack = (start, end) if pack is None else (pack[0], end)
    flush()
    return spans
