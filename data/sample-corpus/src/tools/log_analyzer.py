#!/usr/bin/env python3
"""Sentinel IXL diagnostic log analyzer.

Parses diag.log exports (format: docs/log-format.md), filters and
summarises records, and flags log patterns that match known software
issues of release 4.3.x:

    SIXL-2291  det_ms about 10 x pm_detection_debounce_ms (PMC debounce unit bug)
    SIXL-2317  E31-B with sweep_axles == min_axles and balanced counts
    SIXL-2288  E44-A in crc16 mode with byte-swapped crc_rx / crc_calc
    SIXL-2231  E52-B trigger=rollaway with threshold < 10 (pre-4.3.1 units)
    SIXL-2342  section release timer delay_ms shorter than route_release_delay_s

Usage examples:
    log_analyzer.py diag.log --summary
    log_analyzer.py diag.log --code E73-B --object P12
    log_analyzer.py diag.log --code E52-B --context 5
    log_analyzer.py diag.log --known-issues --debounce-ms 40 --release-delay-s 120
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from dataclasses import dataclass, field
from typing import Iterable, Iterator

LINE_RE = re.compile(
    r"^(?P<ts>\S+) (?P<ch>[AB-]) (?P<subsys>\S+)\s+(?P<level>ERROR|WARN|INFO|DEBUG)\s+"
    r"(?P<code>\S+)\s+(?P<obj>\S+) (?P<func>\w+): (?P<msg>[^(]*?)(?: \((?P<details>.*)\))?$"
)


@dataclass
class Record:
    ts: str
    ch: str
    subsys: str
    level: str
    code: str
    obj: str
    func: str
    msg: str
    details: dict[str, str] = field(default_factory=dict)
    lineno: int = 0

    def num(self, key: str, default: int | None = None) -> int | None:
        """Return a detail value as int (accepts 0x.. hex)."""
        v = self.details.get(key)
        if v is None:
            return default
        try:
            return int(v, 0)
        except ValueError:
            return default


def parse_details(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in (text or "").split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def parse_lines(lines: Iterable[str], unparsed: list[str]) -> Iterator[Record]:
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        m = LINE_RE.match(line)
        if not m:
            unparsed.append(line)
            continue
        yield Record(m["ts"], m["ch"], m["subsys"], m["level"], m["code"], m["obj"],
                     m["func"], m["msg"].strip(), parse_details(m["details"]), n)


def byte_swapped16(a: int, b: int) -> bool:
    return ((a & 0xFF) << 8 | (a >> 8) & 0xFF) == b


def known_issue_hints(records: list[Record], debounce_ms: int, release_delay_s: int) -> list[str]:
    """Return human-readable hints for patterns of known 4.3.x issues."""
    hints: list[str] = []
    for r in records:
        if r.subsys == "PMC" and r.func == "pm_check_detection" and "det_ms" in r.details:
            det = r.num("det_ms", 0) or 0
            if debounce_ms and det >= 10 * debounce_ms:
                hints.append(f"line {r.lineno}: {r.obj} det_ms={det} >= 10x debounce "
                             f"{debounce_ms} ms -> possible SIXL-2291, compare with the "
                             f"mechanical lock time (see troubleshooting-points.md)")
        elif r.code == "E31-B":
            if (r.num("sweep_in") == r.num("sweep_out")
                    and r.num("sweep_axles") == r.num("min_axles")):
                hints.append(f"line {r.lineno}: {r.obj} sweep with exactly min_axles rejected "
                             f"-> SIXL-2317 (FB-2025-02)")
        elif r.code == "E44-A" and r.details.get("mode") == "crc16":
            rx, calc = r.num("crc_rx", 0) or 0, r.num("crc_calc", 0) or 0
            if byte_swapped16(rx, calc):
                hints.append(f"line {r.lineno}: {r.obj} crc16 trailer byte order -> SIXL-2288, "
                             f"use crc32")
        elif r.code == "E52-B" and r.details.get("trigger") == "rollaway":
            thr = r.num("threshold", 0) or 0
            if thr < 10:
                hints.append(f"line {r.lineno}: {r.obj} rollaway EB with threshold={thr} "
                             f"(km/h vs 0.1 km/h) -> SIXL-2231, fixed in 4.3.1")
        elif r.func == "rl_start_release" and "delay_ms" in r.details:
            delay = r.num("delay_ms", 0) or 0
            if release_delay_s and delay < release_delay_s * 1000:
                hints.append(f"line {r.lineno}: {r.obj} release delay {delay} ms < "
                             f"{release_delay_s} s configured -> SIXL-2342")
    return hints


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logfile", nargs="+")
    ap.add_argument("--code", help="only records with this code, e.g. E73-B")
    ap.add_argument("--object", help="only records for this object, e.g. P12")
    ap.add_argument("--subsystem", help="only this subsystem, e.g. BLI")
    ap.add_argument("--summary", action="store_true", help="count records per code and object")
    ap.add_argument("--context", type=int, default=0,
                    help="with --code: show N preceding records of the same object")
    ap.add_argument("--known-issues", action="store_true", help="flag known 4.3.x issues")
    ap.add_argument("--debounce-ms", type=int, default=40, help="pm_detection_debounce_ms")
    ap.add_argument("--release-delay-s", type=int, default=30, help="route_release_delay_s")
    args = ap.parse_args(argv)

    unparsed: list[str] = []
    records: list[Record] = []
    for path in args.logfile:
        with open(path, encoding="utf-8", errors="replace") as fh:
            records.extend(parse_lines(fh, unparsed))

    def keep(r: Record) -> bool:
        return ((not args.code or r.code == args.code)
                and (not args.object or r.obj == args.object)
                and (not args.subsystem or r.subsys == args.subsystem))

    if args.summary:
        counts = collections.Counter((r.code, r.obj) for r in records if r.code != "-" and keep(r))
        for (code, obj), n in counts.most_common():
            print(f"{code:6} {obj:12} {n:6}")
    elif args.known_issues:
        for hint in known_issue_hints(records, args.debounce_ms, args.release_delay_s):
            print(hint)
    else:
        for i, r in enumerate(records):
            if not keep(r):
                continue
            if args.context:
                before = [p for p in records[:i] if p.obj == r.obj][-args.context:]
                for p in before:
                    print(f"    {p.ts} {p.level:5} {p.code:5} {p.func}: {p.msg} {p.details}")
            print(f"{r.ts} {r.ch} {r.subsys:4} {r.level:5} {r.code:5} {r.obj} {r.func}: "
                  f"{r.msg} {r.details}")

    if unparsed:
        print(f"# unparsed lines: {len(unparsed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
