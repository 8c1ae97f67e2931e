"""The only conftest: registers the suite's plugin. Fixtures are in tests/fixtures/, markers and
the fast-tier guard in tests/fixtures/tiers.py, plain helpers in tests/support/."""

pytest_plugins = [
    "pytester",  # tests/test_tiers.py runs small pytest sessions in this process
    "tests.fixtures.tiers",
    "tests.fixtures.models",
    "tests.fixtures.data",
    "tests.fixtures.services",
    "tests.fixtures.deploy",
]
