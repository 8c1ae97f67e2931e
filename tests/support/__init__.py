"""Plain helpers the tests import (paths, process handles, in-process servers, fakes).

Fixtures live in the `tests.fixtures` plugin; nothing here is a fixture, and no test imports a
conftest module.
"""
