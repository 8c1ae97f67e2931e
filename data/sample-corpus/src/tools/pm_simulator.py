#!/usr/bin/env python3
"""Point machine throw/lock timing simulator for Sentinel IXL.

Replays the PMC state machine of src/pmc/point_machine.c in 10 ms steps for
a machine with given mechanical timings, and predicts whether a throw ends
LOCKED, LOCKED after retry (W73-D) or FAILED with E72-C/E74-A/E73-B.

With --sixl-2291 the detection debounce is modelled as in releases 4.3.0
and 4.3.1 (stable cycles compared with milliseconds, i.e. 10x longer).

On most machine types the detection contact is made by the lock slide,
so it closes together with the lock (--det-after-ms ~= --lock-after-ms)
and the debounce delay adds directly to the lock time.

Examples:
    # P12 at Kestrel Junction, normal day: lock slide engages ~700 ms after
    # cut-off; with SIXL-2291 the PMC shows "locked" only at ~1100 ms.
    pm_simulator.py --throw-ms 1108 --det-after-ms 700 --lock-after-ms 700 --sixl-2291
    # frosty morning: 1150 + 400 ms > 1500 ms -> retry pulse -> W73-D
    pm_simulator.py --throw-ms 1108 --det-after-ms 1150 --lock-after-ms 1150 --sixl-2291
    # same without a retry left (or worse frost): E73-B
    pm_simulator.py --det-after-ms 1150 --lock-after-ms 1150 --retries 0 --sixl-2291
    # after change request CR-KJ-0417 (override 2500 ms, debounce 10 ms)
    pm_simulator.py --det-after-ms 1150 --lock-after-ms 1150 --lock-timeout-ms 2500 \
                    --debounce-ms 10 --sixl-2291
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

PMC_CYCLE_MS = 10
PM_RETRY_PULSE_MS = 250


@dataclass
class Machine:
    start_delay_ms: int = 80       # command -> motor current present
    throw_ms: int = 1100           # command -> end-of-stroke cut-off
    det_after_ms: int = 10         # cut-off -> detection contact closes
    lock_after_ms: int = 600       # cut-off -> lock contact closes
    retry_gain_ms: int = 0         # lock time saved by each retry pulse


@dataclass
class Config:
    pm_lock_timeout_ms: int = 1500
    pm_throw_timeout_ms: int = 6000
    pm_detection_debounce_ms: int = 40
    pm_motor_start_window_ms: int = 300
    pm_lock_retry_count: int = 1
    pm_throw_warn_pct: int = 80


def debounce_cycles(cfg: Config, sixl_2291: bool) -> int:
    """Number of stable PMC cycles needed before detection is accepted."""
    if sixl_2291:
        return cfg.pm_detection_debounce_ms             # ticks compared with ms (bug)
    return -(-cfg.pm_detection_debounce_ms // PMC_CYCLE_MS)


def simulate(m: Machine, cfg: Config, sixl_2291: bool) -> list[str]:
    """Return the event list of one throw, in the style of the PMC log."""
    ev: list[str] = []
    if m.start_delay_ms > cfg.pm_motor_start_window_ms:
        return [f"E72-C motor did not start (window_ms={cfg.pm_motor_start_window_ms})"]
    if m.throw_ms > cfg.pm_throw_timeout_ms:
        return [f"E74-A throw timeout (throw_ms>{cfg.pm_throw_timeout_ms})"]
    ev.append(f"t={m.throw_ms} motor cut-off (throw_ms={m.throw_ms})")
    if m.throw_ms * 100 > cfg.pm_throw_timeout_ms * cfg.pm_throw_warn_pct:
        ev.append("W74-A throw time degrading")

    need = debounce_cycles(cfg, sixl_2291)
    # absolute times measured from the first motor cut-off
    det_abs = m.det_after_ms + need * PMC_CYCLE_MS       # debounced detection
    lock_abs = m.lock_after_ms                           # lock contact closed
    ev.append(f"detection stable det_ms={det_abs} "
              f"(configured {cfg.pm_detection_debounce_ms} ms, effective {need * PMC_CYCLE_MS} ms)")

    timer_start = 0                                      # cut-off or end of retry pulse
    for attempt in range(cfg.pm_lock_retry_count + 1):
        ready_rel = max(det_abs, lock_abs, timer_start) - timer_start   # both needed
        if ready_rel <= cfg.pm_lock_timeout_ms:
            ev.append(f"LOCKED locked_ms={ready_rel} retries={attempt}/{cfg.pm_lock_retry_count}")
            if attempt:
                ev.append("W73-D lock confirmed only after retry")
            return ev
        elapsed = cfg.pm_lock_timeout_ms + PMC_CYCLE_MS
        if attempt < cfg.pm_lock_retry_count:
            ev.append(f"lock not confirmed, retrying (elapsed_ms={elapsed} "
                      f"retries={attempt}/{cfg.pm_lock_retry_count})")
            timer_start += elapsed + PM_RETRY_PULSE_MS
            lock_abs = max(timer_start, lock_abs - m.retry_gain_ms)
        else:
            ev.append(f"E73-B lock not confirmed within timeout (lock_ms={cfg.pm_lock_timeout_ms} "
                      f"elapsed_ms={elapsed} retries={attempt}/{cfg.pm_lock_retry_count})")
    return ev


def main() -> None:
    ap = argparse.ArgumentParser(description="Sentinel IXL PMC timing simulator")
    ap.add_argument("--start-delay-ms", type=int, default=80)
    ap.add_argument("--throw-ms", type=int, default=1100)
    ap.add_argument("--det-after-ms", type=int, default=10)
    ap.add_argument("--lock-after-ms", type=int, default=600)
    ap.add_argument("--retry-gain-ms", type=int, default=0)
    ap.add_argument("--lock-timeout-ms", type=int, default=1500)
    ap.add_argument("--throw-timeout-ms", type=int, default=6000)
    ap.add_argument("--debounce-ms", type=int, default=40)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--sixl-2291", action="store_true", help="model the 4.3.x debounce defect")
    a = ap.parse_args()

    m = Machine(a.start_delay_ms, a.throw_ms, a.det_after_ms, a.lock_after_ms, a.retry_gain_ms)
    cfg = Config(a.lock_timeout_ms, a.throw_timeout_ms, a.debounce_ms, 300, a.retries)
    for line in simulate(m, cfg, a.sixl_2291):
        print(line)


if __name__ == "__main__":
    main()
