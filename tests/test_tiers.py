"""The tier plugin (tests/fixtures/tiers.py): markers by fixture and directory, and a fast tier
that fails a test which loads a model or starts a process without saying so.

Each case runs a small pytest session in this process (pytester) with only the tier plugin; the
guard stops the forbidden call before it happens, so nothing is loaded or started here.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from tests.fixtures import tiers

FAST = ["-p", "tests.fixtures.tiers", "-p", "no:cacheprovider", "--strict-markers"]
FAST += ["-m", tiers.FAST_SELECTION]


def test_a_process_in_an_unmarked_test_fails_the_fast_tier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_spawn="""
        import os, subprocess, threading
        import pytest

        def test_runs_a_tool():
            subprocess.run(["true"], check=True)

        def test_swallows_the_failure():
            try:
                subprocess.run(["true"])
            except Exception:
                pass

        def test_spawns_from_a_thread():
            thread = threading.Thread(target=lambda: os.system("true"))
            thread.start()
            thread.join()

        @pytest.mark.service
        def test_marked_is_not_in_the_fast_tier():
            raise AssertionError("deselected")

        def test_in_process_work_is_fine():
            assert sum(range(4)) == 6
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(failed=3, passed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*test_runs_a_tool starts a process (true), but is not marked `service`*",
            "*pytest.mark.service*",
        ]
    )
    output = result.stdout.str()
    assert "tier guard: test_spawn.py::test_swallows_the_failure starts a process" in output
    assert "test_spawn.py::test_spawns_from_a_thread starts a process (true)" in output


def test_a_model_load_in_an_unmarked_test_fails_the_fast_tier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_load="""
        import llama_cpp

        def test_loads_a_gguf():
            params = llama_cpp.llama_model_default_params()
            llama_cpp.llama_model_load_from_file(b"/nonexistent/tiny.gguf", params)
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*loads /nonexistent/tiny.gguf in llama.cpp, but is not marked `model`*"]
    )


def test_fixtures_and_directories_mark_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def embedder():
            return "stands in for the real one"

        @pytest.fixture
        def index(embedder):  # marked through the closure
            return embedder

        @pytest.fixture
        def kubectl():
            return "kubectl"
        """
    )
    pytester.makepyfile(
        test_plain="def test_plain():\n    pass\n",
        test_uses=("def test_index(index):\n    pass\n\ndef test_kubectl(kubectl):\n    pass\n"),
    )
    pytester.mkdir("e2e")
    pytester.path.joinpath("e2e", "test_stack.py").write_text("def test_stack():\n    pass\n")
    fast = pytester.runpytest_inprocess(*FAST)
    fast.assert_outcomes(passed=1, deselected=3)
    collected = pytester.runpytest_inprocess(
        "-p", "tests.fixtures.tiers", "--collect-only", "-q", "-m", "model and service"
    )
    selected = [line for line in collected.outlines if "::" in line]
    assert selected == ["e2e/test_stack.py::test_stack"]


@pytest.mark.parametrize(
    ("expression", "armed"),
    [
        ("", set()),
        ("not model and not service", {"model", "service"}),
        ("not model", {"model"}),
        ("not service", {"service"}),
        ("model", {"service"}),  # a test marked only `service` is not selected
        ("e2e or not model", {"model"}),
    ],
)
def test_the_guard_is_armed_for_what_the_selection_excludes(
    expression: str, armed: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAILDEBUG_TEST_GUARDS", raising=False)
    config = cast(pytest.Config, SimpleNamespace(option=SimpleNamespace(markexpr=expression)))
    assert tiers._armed(config) == armed
    monkeypatch.setenv("RAILDEBUG_TEST_GUARDS", "1")
    assert tiers._armed(config) == {"model", "service"}
