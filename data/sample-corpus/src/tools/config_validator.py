#!/usr/bin/env python3
"""Offline validator for Sentinel IXL station configuration files (4.3.x).

Checks the same syntax and ranges as src/common/config_loader.c (which logs
E05-A, W05-A, W05-D at start-up) plus the cross-key rules listed in
docs/config-reference.md, and warns about known 4.3.x issues.

Exit status: 0 = ok, 1 = errors found, 2 = warnings only with --strict.

Usage:
    config_validator.py station.cfg [--strict]
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

# name: (default, min, max, overridable) -- must match src/common/config_keys.h
NUMERIC_KEYS: dict[str, tuple[int, int, int, bool]] = {
    "pm_lock_timeout_ms": (1500, 500, 5000, True),
    "pm_throw_timeout_ms": (6000, 2000, 15000, True),
    "pm_detection_debounce_ms": (40, 10, 200, True),
    "pm_motor_start_window_ms": (300, 100, 1000, True),
    "pm_motor_current_limit_ma": (4500, 1000, 9000, True),
    "pm_lock_retry_count": (1, 0, 3, True),
    "pm_throw_warn_pct": (80, 50, 95, False),
    "tc_pickup_threshold_ma": (120, 40, 400, True),
    "tc_dropaway_threshold_ma": (90, 30, 380, True),
    "tc_clear_delay_ms": (2000, 500, 10000, True),
    "tc_flicker_limit": (6, 2, 30, False),
    "tc_max_receiver_ma": (600, 200, 1000, True),
    "tc_margin_warn_pct": (15, 5, 50, False),
    "ace_min_sweep_axles": (4, 2, 16, True),
    "ace_head_phase_tolerance_us": (250, 50, 1000, False),
    "ace_comm_timeout_ms": (500, 100, 2000, False),
    "leu_update_timeout_ms": (1000, 200, 5000, False),
    "bli_linking_tolerance_m": (5, 1, 50, False),
    "brake_release_timeout_ms": (3000, 1000, 10000, False),
    "brake_standstill_speed_kmh": (2, 1, 5, False),
    "brake_speed_diff_kmh": (5, 1, 20, False),
    "brake_pipe_min_kpa": (450, 300, 600, False),
    "brake_eb_latch_s": (10, 0, 60, False),
    "bsi_watchdog_ms": (200, 50, 1000, False),
    "route_release_delay_s": (30, 0, 240, False),
    "route_setting_timeout_s": (20, 5, 120, False),
    "approach_lock_time_s": (120, 0, 600, False),
    "oc_heartbeat_ms": (100, 20, 1000, False),
    "oc_heartbeat_miss_limit": (3, 1, 10, False),
    "safe_link_crc_error_limit": (5, 1, 100, False),
    "time_sync_max_offset_ms": (50, 5, 1000, False),
    "diag_log_rotate_kb": (4096, 256, 65536, False),
    "diag_bus_bitrate": (500000, 125000, 1000000, False),
}
ENUM_KEYS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "ace_reset_mode": ("conditional", ("direct", "conditional", "preparatory"), True),
    "balise_telegram_crc_mode": ("crc32", ("off", "crc16", "crc32"), False),
    "flank_protection_mode": ("strict", ("strict", "relaxed"), False),
    "diag_log_level": ("info", ("error", "warn", "info", "debug"), False),
}
BOOL_KEYS = {"bli_packet44_strict": True, "sixl_test_mode": False}
LIST_KEYS = {"bli_packet44_allowed_xuser": (0, 511)}
BITRATES = {125000, 250000, 500000, 1000000}

LINE_RE = re.compile(r"^(?P<key>[a-z0-9_]+)(?:@(?P<obj>[A-Za-z0-9/_-]+))?\s*=\s*(?P<val>.*)$")


@dataclass
class Finding:
    severity: str   # "error" | "warning"
    line: int
    text: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{self.severity.upper():7} {where:9} {self.text}"


def validate(text: str) -> tuple[dict[str, object], list[Finding]]:
    """Parse a configuration text; return effective global values and findings."""
    values: dict[str, object] = {k: v[0] for k, v in NUMERIC_KEYS.items()}
    values.update({k: v[0] for k, v in ENUM_KEYS.items()})
    values.update(BOOL_KEYS)
    values["bli_packet44_allowed_xuser"] = []
    findings: list[Finding] = []

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("["):
            continue
        m = LINE_RE.match(line)
        if not m:
            findings.append(Finding("error", n, f"E05-A syntax error: {raw.strip()!r}"))
            continue
        key, obj, val = m["key"], m["obj"], m["val"].strip()
        if key in NUMERIC_KEYS:
            _, lo, hi, overridable = NUMERIC_KEYS[key]
            if obj and not overridable:
                findings.append(Finding("error", n, f"E05-A {key} has no per-object override"))
                continue
            if not val.isdigit():
                findings.append(Finding("error", n, f"E05-A {key}: not a number: {val!r}"))
                continue
            v = int(val)
            if not lo <= v <= hi:
                used = min(max(v, lo), hi)
                findings.append(Finding("warning", n, f"W05-D {key}={v} outside {lo}..{hi}, "
                                                      f"loader will use {used}"))
                v = used
            if not obj:
                values[key] = v
        elif key in ENUM_KEYS:
            allowed = ENUM_KEYS[key][1]
            if val not in allowed:
                findings.append(Finding("error", n, f"E05-A {key}: {val!r} not in {allowed}"))
            elif not obj:
                values[key] = val
        elif key in BOOL_KEYS:
            if val not in ("true", "false"):
                findings.append(Finding("error", n, f"E05-A {key}: expected true/false"))
            else:
                values[key] = (val == "true")
        elif key in LIST_KEYS:
            lo, hi = LIST_KEYS[key]
            try:
                items = [int(x) for x in re.split(r"[,\s]+", val) if x]
            except ValueError:
                findings.append(Finding("error", n, f"E05-A {key}: list of integers expected"))
                continue
            bad = [x for x in items if not lo <= x <= hi]
            if bad:
                findings.append(Finding("error", n, f"E05-A {key}: values out of {lo}..{hi}: {bad}"))
            values[key] = items
        else:
            findings.append(Finding("warning", n, f"W05-A unknown key {key!r} ignored "
                                                  f"(typing error? default stays in effect)"))
    findings.extend(cross_checks(values))
    return values, findings


def cross_checks(v: dict[str, object]) -> list[Finding]:
    """Cross-key rules from docs/config-reference.md (global values only)."""
    f: list[Finding] = []
    if v["tc_dropaway_threshold_ma"] > v["tc_pickup_threshold_ma"] - 10:
        f.append(Finding("error", 0, "tc_dropaway_threshold_ma must be <= "
                                     "tc_pickup_threshold_ma - 10 (hysteresis)"))
    if v["pm_throw_timeout_ms"] <= v["pm_motor_start_window_ms"] + 1000:
        f.append(Finding("error", 0, "pm_throw_timeout_ms must exceed "
                                     "pm_motor_start_window_ms + 1000"))
    # SIXL-2291: effective debounce is 10x the configured value in 4.3.x
    if v["pm_lock_timeout_ms"] < 10 * v["pm_detection_debounce_ms"] + 300:
        f.append(Finding("warning", 0, "pm_lock_timeout_ms < 10 x pm_detection_debounce_ms + 300: "
                                       "lock timeout may expire (E73-B), see SIXL-2291"))
    if v["brake_release_timeout_ms"] < 5 * v["bsi_watchdog_ms"]:
        f.append(Finding("error", 0, "brake_release_timeout_ms must be >= 5 x bsi_watchdog_ms"))
    if v["oc_heartbeat_ms"] * v["oc_heartbeat_miss_limit"] > 1000:
        f.append(Finding("warning", 0, "oc_heartbeat_ms x oc_heartbeat_miss_limit > 1000 ms"))
    if v["balise_telegram_crc_mode"] == "off" and not v["sixl_test_mode"]:
        f.append(Finding("error", 0, "balise_telegram_crc_mode = off requires sixl_test_mode = true"))
    if v["balise_telegram_crc_mode"] == "crc16":
        f.append(Finding("warning", 0, "crc16 read-back rejected in 4.3.x (SIXL-2288), use crc32"))
    if v["route_release_delay_s"] > 65:
        eff = (v["route_release_delay_s"] * 1000) % 65536 / 1000
        f.append(Finding("warning", 0, f"route_release_delay_s > 65 truncated in 4.3.x (SIXL-2342): "
                                       f"effective about {eff:.1f} s"))
    if v["diag_bus_bitrate"] not in BITRATES:
        f.append(Finding("error", 0, f"diag_bus_bitrate must be one of {sorted(BITRATES)}"))
    if v["sixl_test_mode"]:
        f.append(Finding("warning", 0, "sixl_test_mode = true: signals will not clear to proceed"))
    worst_ms = v["pm_throw_timeout_ms"] + (1 + v["pm_lock_retry_count"]) * (v["pm_lock_timeout_ms"] + 250)
    if worst_ms >= v["route_setting_timeout_s"] * 1000:
        f.append(Finding("warning", 0, f"worst-case point setting {worst_ms} ms >= "
                                       f"route_setting_timeout_s: E61-A before E73-B"))
    return f


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Validate a Sentinel IXL station configuration")
    ap.add_argument("config")
    ap.add_argument("--strict", action="store_true", help="treat warnings as failures")
    args = ap.parse_args(argv)
    with open(args.config, encoding="utf-8") as fh:
        _, findings = validate(fh.read())
    for finding in findings:
        print(finding)
    if any(x.severity == "error" for x in findings):
        return 1
    if args.strict and findings:
        return 2
    print("OK" if not findings else "OK with warnings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
