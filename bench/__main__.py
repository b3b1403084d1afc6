"""`python -m bench`: run every benchmark, one after another, and write bench/RESULTS.md."""

from __future__ import annotations

import sys
import time

from bench import api, create, density, gateway, lifecycle, recording, sandbox, selenium, settings, video
from bench.common import BENCH_DIR, QUICK, TARGET_HEADER, Report, machine, source_state, table

BENCHMARKS = (lifecycle, create, sandbox, gateway, density, api, recording, video, settings, selenium)


def render(reports: list[Report], facts: list[tuple[str, str]], seconds: float) -> str:
    parts = [
        "# browserfleet benchmarks",
        f"Written by `python -m bench` in {seconds / 60:.1f} min. Every number below was measured in "
        "this one run; the verdicts are computed from those numbers. Traffic stayed on 127.0.0.1 "
        "(a loopback-only network namespace, and Chromium's host resolver limited to 127.0.0.1 and "
        "localhost).",
    ]
    if QUICK:
        parts.append("**BENCH_QUICK=1: a tenth of every count. These numbers only show the code runs.**")
    parts.append("## Machine and versions\n\n" + table(("", ""), [list(f) for f in facts]))
    targets = [[r.key, *t.row()] for r in reports for t in r.targets]
    failed = [r.key for r in reports if r.failed]
    summary = "## Targets (from the issue)\n\n" + table(("benchmark", *TARGET_HEADER), targets)
    met = sum(1 for r in reports for t in r.targets if t.met)
    summary += f"\n\n{met} of {len(targets)} met."
    if failed:
        summary += f" **Failed to run: {', '.join(failed)}** (see their sections)."
    parts.append(summary)
    parts.append(
        "## How to read the tables\n\n"
        "Times are wall-clock milliseconds measured by the client (`time.perf_counter`). Percentiles "
        "interpolate linearly between the closest ranks, so with n=50 the p99 lies between the two "
        "largest samples. Ratios are of medians unless a column says otherwise. Warm-up iterations "
        "are run and not counted."
    )
    parts.extend(r.markdown().strip() for r in reports)
    return "\n\n".join(parts) + "\n"


def main() -> None:
    started = time.monotonic()
    facts = machine()
    source = source_state()
    reports = []
    for module in BENCHMARKS:
        print(f"{module.__name__} ...", file=sys.stderr, flush=True)
        report = module.run()
        status = "FAILED" if report.failed else "done"
        print(f"{module.__name__}: {status} in {report.seconds:.0f} s", file=sys.stderr, flush=True)
        reports.append(report)
    seconds = time.monotonic() - started
    if source_state() != source:
        facts.append(("source changed during the run", f"now {source_state()}: the benchmarks mix versions"))
    out = BENCH_DIR / "RESULTS.md"
    out.write_text(render(reports, facts, seconds))
    print(f"wrote {out} ({seconds / 60:.1f} min)", file=sys.stderr)
    if any(r.failed for r in reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
