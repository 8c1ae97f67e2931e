"""Finds and reads the files to ingest, and infers what kind of text each one holds.

The kind decides how a file is chunked (headings for docs, blocks for code, line windows for
text) and both kind and language are stored as filterable columns, so inference lives in one
place that the CLI, the gRPC layer and the tests all share. PDF manuals are turned into text
here, on the reading side, so the Ingest RPC only ever carries text.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from raildebug.errors import InvalidRequest, NotFound
from services.retriever.models import SourceDocument

KIND_DOC = "doc"
KIND_CODE = "code"
KIND_TEXT = "text"
KINDS = (KIND_DOC, KIND_CODE, KIND_TEXT)

# Extension (lower case, with dot) -> (kind, language). Config formats count as "code": they are
# chunked by top-level blocks and searched next to the code that reads them.
EXTENSIONS: dict[str, tuple[str, str]] = {
    ".md": (KIND_DOC, "markdown"),
    ".markdown": (KIND_DOC, "markdown"),
    ".rst": (KIND_DOC, "rst"),
    ".pdf": (KIND_DOC, "pdf"),
    ".txt": (KIND_TEXT, "text"),
    ".log": (KIND_TEXT, "text"),
    ".c": (KIND_CODE, "c"),
    ".h": (KIND_CODE, "c"),
    ".cc": (KIND_CODE, "cpp"),
    ".cpp": (KIND_CODE, "cpp"),
    ".cxx": (KIND_CODE, "cpp"),
    ".hpp": (KIND_CODE, "cpp"),
    ".hh": (KIND_CODE, "cpp"),
    ".py": (KIND_CODE, "python"),
    ".adb": (KIND_CODE, "ada"),
    ".ads": (KIND_CODE, "ada"),
    ".java": (KIND_CODE, "java"),
    ".rs": (KIND_CODE, "rust"),
    ".go": (KIND_CODE, "go"),
    ".js": (KIND_CODE, "javascript"),
    ".mjs": (KIND_CODE, "javascript"),
    ".ts": (KIND_CODE, "typescript"),
    ".sh": (KIND_CODE, "shell"),
    ".bash": (KIND_CODE, "shell"),
    ".yaml": (KIND_CODE, "yaml"),
    ".yml": (KIND_CODE, "yaml"),
    ".toml": (KIND_CODE, "toml"),
    ".json": (KIND_CODE, "json"),
    ".ini": (KIND_CODE, "ini"),
    ".cfg": (KIND_CODE, "ini"),
}

# Files with an unknown extension are still indexable as plain text when explicitly included.
FALLBACK_KIND_LANGUAGE = (KIND_TEXT, "text")

SKIPPED_DIRS = frozenset({".git", "__pycache__"})
_BINARY_SNIFF_BYTES = 8192
# Extracted PDF pages are joined with a line holding only this character, so the chunker can
# cut at page boundaries and title each chunk with its page.
PAGE_BREAK = "\f"


def infer_kind_language(path: str | PurePosixPath | Path) -> tuple[str, str]:
    """(kind, language) for a file name; unknown extensions are treated as plain text."""
    suffix = PurePosixPath(str(path).replace("\\", "/")).suffix.lower()
    return EXTENSIONS.get(suffix, FALLBACK_KIND_LANGUAGE)


def is_known_extension(path: str | PurePosixPath | Path) -> bool:
    """Whether the extension is one the chunkers understand (used when no include glob is set)."""
    return PurePosixPath(str(path).replace("\\", "/")).suffix.lower() in EXTENSIONS


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Gitignore-like glob: `**` crosses directories, `*` and `?` stay within one segment."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class GlobSet:
    """A set of globs matched against a relative POSIX path.

    A pattern without "/" matches the file name at any depth ("*.md"); a pattern with "/" is
    anchored at the root ("docs/**/*.md"), the way .gitignore reads them.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p.strip().removeprefix("./") for p in patterns if p.strip())
        self._compiled = [(("/" in p), _glob_to_regex(p.rstrip("/"))) for p in self.patterns]

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, relative_path: str) -> bool:
        name = relative_path.rsplit("/", 1)[-1]
        for anchored, regex in self._compiled:
            if anchored:
                if regex.match(relative_path):
                    return True
            elif regex.match(name) or regex.match(relative_path):
                return True
        return False


def _is_binary(path: Path) -> bool:
    """A NUL byte in the first block is the same heuristic git uses to call a file binary."""
    try:
        with path.open("rb") as handle:
            return b"\x00" in handle.read(_BINARY_SNIFF_BYTES)
    except OSError:
        return False  # unreadable: let read_source_document report it with a clear message


def iter_source_files(
    root: Path,
    include_globs: Iterable[str] = (),
    exclude_globs: Iterable[str] = (),
) -> Iterator[tuple[str, Path]]:
    """Yield (relative POSIX path, absolute path) for every file to ingest under `root`.

    Deterministic (sorted) so repeated ingests produce the same order and the same progress
    counts. Hidden files and directories, .git and __pycache__ are skipped, as are binary files.
    With no include globs, only files whose extension is known (see EXTENSIONS) are yielded;
    exclude globs win over include globs. Symlinked directories are not followed (no cycles).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"source root {root} is not a directory; pass the folder to ingest")
    root_abs = root.resolve()
    includes = GlobSet(include_globs)
    excludes = GlobSet(exclude_globs)
    for dirpath, dirnames, filenames in os.walk(root_abs):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
        current = Path(dirpath)
        rel_dir = current.relative_to(root_abs).as_posix()
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            rel = filename if rel_dir == "." else f"{rel_dir}/{filename}"
            if excludes.matches(rel):
                continue
            if includes:
                if not includes.matches(rel):
                    continue
            elif not is_known_extension(rel):
                continue
            absolute = current / filename
            if not absolute.is_file():
                continue
            if absolute.is_symlink() and not absolute.resolve().is_relative_to(root_abs):
                continue  # never read outside the ingest root through a link
            if _is_binary(absolute) and not _is_pdf(rel):
                continue
            yield rel, absolute


def _is_pdf(path: str | Path) -> bool:
    return str(path).lower().endswith(".pdf")


def pdf_text(raw: bytes, name: str) -> str:
    """The text of a PDF, page by page, pages separated by PAGE_BREAK lines.

    Raises InvalidRequest for a PDF that cannot be parsed, is encrypted with a password, or
    has no text layer (a scan), naming the file and what to do.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidRequest(f"{name}: PDF is password-protected; ingest a decrypted copy")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except InvalidRequest:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            f"{name}: is not a readable PDF ({exc}); re-export it or exclude it from the ingest"
        ) from None
    if not any(pages):
        raise InvalidRequest(
            f"{name}: PDF has no text layer (scanned pages?); run OCR on it first or exclude it"
        )
    text = f"\n{PAGE_BREAK}\n".join(pages)
    return text.replace("\r\n", "\n").replace("\r", "\n") + "\n"


def _relative_source(root: Path, path: Path) -> tuple[str, Path]:
    root_abs = Path(root).resolve()
    absolute = path if path.is_absolute() else root_abs / path
    absolute = absolute.resolve()
    try:
        rel = absolute.relative_to(root_abs).as_posix()
    except ValueError:
        raise InvalidRequest(
            f"{path} is outside the ingest root {root_abs}; pass a path under the root"
        ) from None
    return rel, absolute


def read_source_document(
    root: Path,
    path: Path | str,
    metadata: Mapping[str, str] | None = None,
) -> SourceDocument:
    """Read one file as a SourceDocument whose `source` is its path relative to `root`.

    The text must be UTF-8 (a BOM is dropped); CRLF/CR line ends become LF so that line numbers
    match what editors show. A PDF becomes its extracted text (see pdf_text), whose line
    numbers are those of that text. Raises NotFound for a missing file and InvalidRequest for a file
    that cannot be read or decoded, naming the file and what to do about it.
    """
    rel, absolute = _relative_source(Path(root), Path(path))
    try:
        raw = absolute.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{rel}: file does not exist under {root}") from None
    except IsADirectoryError:
        raise InvalidRequest(f"{rel}: is a directory, not a file") from None
    except OSError as exc:
        raise InvalidRequest(
            f"{rel}: cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    kind, language = infer_kind_language(rel)
    if language == "pdf":
        return SourceDocument(
            source=rel,
            content=pdf_text(raw, rel),
            kind=kind,
            language=language,
            metadata=dict(metadata or {}),
        )
    if b"\x00" in raw[:_BINARY_SNIFF_BYTES]:
        raise InvalidRequest(f"{rel}: looks binary (NUL bytes); exclude it from the ingest")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{rel}: is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8 or exclude it from the ingest"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return SourceDocument(
        source=rel,
        content=text,
        kind=kind,
        language=language,
        metadata=dict(metadata or {}),
    )


def resolve_kind_language(doc: SourceDocument) -> tuple[str, str]:
    """The document's own kind/language where given, else what its extension implies.

    Raises InvalidRequest for a kind the chunkers do not know, so a typo is reported per
    document instead of silently indexing the file as plain text.
    """
    inferred_kind, inferred_language = infer_kind_language(doc.source)
    kind = doc.kind.strip().lower() or inferred_kind
    if kind not in KINDS:
        raise InvalidRequest(f"unknown kind {doc.kind!r}; use one of: {', '.join(KINDS)}")
    language = doc.language.strip().lower() or inferred_language
    return kind, language
