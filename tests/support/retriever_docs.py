"""A four-document corpus (points, brake, track docs and one C file) for retriever tests."""

from __future__ import annotations

from services.retriever.models import SourceDocument

POINTS_DOC = """\
# Error Reference — Points

Errors raised by the point machine controller (PMC).

## E73-B — Point fails to lock

The point reached its end position but the lock was not confirmed within
pm_lock_timeout_ms after the throw. The point is reported as not available.

Check the lock detection contacts and the adjustment of the lock slide.

## E74-A — Throw timeout

The point did not reach its end position within pm_throw_timeout_ms.
"""

BRAKE_DOC = """\
# Troubleshooting — Brake Supervision

## Emergency brake at standstill

A stationary locomotive received an emergency brake demand even though it was
not moving. The brake supervision interface latched the emergency brake because
the speed channels reported rollaway while the vehicle was parked.
"""

TRACK_DOC = """\
# Troubleshooting — Track Circuits

## Section occupied with no train

The track circuit reports the section as occupied although no vehicle is present.
Measure the receiver current and check for a broken rail or a wet ballast bed.
"""

PMC_CODE = """\
#include "pmc.h"

/* Lock supervision: raise E73-B when the lock is not confirmed in time. */
static int pm_check_lock(struct pm *pm, uint32_t now_ms)
{
    if (now_ms - pm->throw_end_ms > pm->cfg.pm_lock_timeout_ms) {
        return E73_B;
    }
    return 0;
}
"""


def make_corpus() -> list[SourceDocument]:
    return [
        SourceDocument("docs/errors-points.md", POINTS_DOC, metadata={"subsystem": "points"}),
        SourceDocument("docs/troubleshooting-brake.md", BRAKE_DOC, metadata={"subsystem": "brake"}),
        SourceDocument("docs/troubleshooting-track.md", TRACK_DOC, metadata={"subsystem": "track"}),
        SourceDocument("src/pmc/pmc_lock.c", PMC_CODE, metadata={"subsystem": "points"}),
    ]
