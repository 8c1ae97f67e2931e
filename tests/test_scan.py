"""`make scan` (scripts/scan.py): what fails it, what the allow-list accepts, and that packages
pip-audit could not check are reported as not audited instead of passing as clean."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import REPO_ROOT


def _load_scan() -> ModuleType:
    spec = importlib.util.spec_from_file_location("raildebug_scan", REPO_ROOT / "scripts/scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scan = _load_scan()

ACCEPTING = """
[[bandit]]
test = "B101"
paths = ["services/**"]
reason = "type narrowing only"

[[pip-audit]]
id = "GHSA-aaaa-bbbb-cccc"
package = "Example"
reason = "the vulnerable parser is never called"
"""


def _finding(test_id: str, filename: str) -> dict[str, object]:
    return {
        "test_id": test_id,
        "test_name": "assert_used",
        "filename": str(REPO_ROOT / filename),
        "line_number": 3,
        "issue_severity": "LOW",
        "issue_confidence": "HIGH",
        "issue_text": "Use of assert detected.",
    }


def test_the_projects_allow_list_gives_a_reason_for_every_entry() -> None:
    accepted = scan.load_accepted()
    assert accepted.bandit, "the project accepts some bandit findings, each with a reason"
    assert all(len(entry.reason) > 40 for entry in (*accepted.bandit, *accepted.audit))


def test_entries_without_a_reason_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "accepted.toml"
    bad.write_text('[[bandit]]\ntest = "B101"\npaths = ["services/**"]\n')
    with pytest.raises(ValueError, match="bandit entry 1 needs test, paths and a reason"):
        scan.load_accepted(bad)
    bad.write_text('[[pip-audit]]\nid = "PYSEC-1"\npackage = "x"\nreason = " "\n')
    with pytest.raises(ValueError, match="pip-audit entry 1 needs id, package and a reason"):
        scan.load_accepted(bad)


def test_bandit_findings_fail_unless_accepted_for_that_test_and_path(tmp_path: Path) -> None:
    path = tmp_path / "accepted.toml"
    path.write_text(ACCEPTING)
    accepted = scan.load_accepted(path)
    report = {
        "results": [
            _finding("B101", "services/inference/engine.py"),  # accepted
            _finding("B101", "raildebug/grpc_runtime/auth.py"),  # same test, other path
            _finding("B105", "services/inference/engine.py"),  # other test, same path
        ],
        "errors": [{"filename": "services/x.py", "reason": "syntax error"}],
    }
    problems, unused = scan.check_bandit(report, accepted)
    assert len(problems) == 3
    assert problems[0].startswith("raildebug/grpc_runtime/auth.py:3: B101")
    assert problems[1].startswith("services/inference/engine.py:3: B105")
    assert "could not scan" in problems[2]
    assert unused == []
    assert scan.check_bandit({"results": []}, accepted)[1] == list(accepted.bandit)


def test_vulnerabilities_fail_unless_accepted_and_unaudited_packages_are_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accepted.toml"
    path.write_text(ACCEPTING)
    report = {
        "dependencies": [
            {
                "name": "example",
                "version": "1.0",
                "vulns": [
                    {"id": "CVE-1", "aliases": ["GHSA-aaaa-bbbb-cccc"], "fix_versions": ["1.1"]}
                ],
            },
            {"name": "other", "version": "2.0", "vulns": [{"id": "PYSEC-9", "fix_versions": []}]},
            {"name": "clean", "version": "3.0", "vulns": []},
            {"name": "unknown", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    result = scan.check_audit(report, scan.load_accepted(path))
    assert result.vulnerabilities == ["other 2.0: PYSEC-9 (fixed in no release yet)"]
    assert result.accepted == ["example 1.0: CVE-1 (fixed in 1.1)"]
    assert result.audited == 3
    assert result.not_audited == ["unknown: Dependency not found on PyPI"]
    banner = scan.not_audited_banner(result)
    assert "1 of 4 installed packages were NOT audited" in banner
    assert "RAILDEBUG_SCAN_STRICT=1" in banner
