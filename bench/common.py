"""What every benchmark shares: statistics, the server under test, the local site, machine facts and
Markdown output.

Nothing here asserts a target: benchmarks measure, and `Target` only compares a measured number with
the goal stated in the issue, so the verdict is always computed from the run's own numbers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

import harness.server
from harness import site as sites
from harness.processes import mentioning
from harness.server import RESOLVER_RULES

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
SITE_SOURCE = ROOT / "tests" / "site"
CHROMIUM = "/usr/lib/chromium/chromium"
# The same resolver rules as every harness server's Chromium gets, for a Chromium launched directly
# (an argv list, so without the shell quoting).
DIRECT_ARGS = ["--headless=new", "--no-sandbox", *shlex.split(RESOLVER_RULES)]
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
MB = 1024 * 1024
DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"
# BENCH_QUICK=1: a tenth of every count, to check the benchmarks work (the numbers mean little).
QUICK = os.environ.get("BENCH_QUICK") == "1"


def scaled(n: int) -> int:
    return max(3, n // 10) if QUICK else n


# -- statistics ------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, linearly interpolated between closest ranks."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        ordered = sorted(values)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(ordered),
            median=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            min=ordered[0],
            max=ordered[-1],
            mean=sum(ordered) / len(ordered),
        )


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def num(value: float, unit: str = "") -> str:
    """A number with precision that suits its size (3 significant figures or so)."""
    if value is None or math.isnan(value):
        return DASH
    size = abs(value)
    digits = 3 if size < 1 else 2 if size < 10 else 1 if size < 100 else 0
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip() if unit else text


def times(value: float) -> str:
    return DASH if math.isnan(value) else f"{value:.2f}{TIMES}"


STATS_HEADER = ("", "n", "median", "p90", "p99", f"min{DASH}max")


def stats_row(label: str, stats: Stats, unit: str = "ms") -> list[str]:
    return [
        label,
        str(stats.n),
        num(stats.median, unit),
        num(stats.p90, unit),
        num(stats.p99, unit),
        f"{num(stats.min)}{DASH}{num(stats.max, unit)}",
    ]


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "-\N{LESS-THAN OR EQUAL TO}" or cell == DASH)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; columns whose cells are all numbers are right-aligned."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    align = [
        "---:" if rows and all(_numeric(str(row[i])) for row in rows) else "---" for i in range(len(header))
    ]
    return "\n".join([line(header), "| " + " | ".join(align) + " |", *(line(r) for r in rows)])


def stats_table(rows: Sequence[tuple[str, Stats]], unit: str = "ms") -> str:
    return table(STATS_HEADER, [stats_row(label, stats, unit) for label, stats in rows])


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# -- targets and reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal from the issue (`value` at most `limit`) and what this run measured."""

    name: str
    value: float
    limit: float
    unit: str  # "ms", "MB" or "x" (a ratio)
    measured: str = ""  # what `value` is, e.g. "median of 50 paced creates"

    @property
    def met(self) -> bool:
        return not math.isnan(self.value) and self.value <= self.limit

    def _fmt(self, value: float) -> str:
        return times(value) if self.unit == "x" else num(value, self.unit)

    @property
    def verdict(self) -> str:
        if math.isnan(self.value):
            return "not measured"
        if self.met:
            return "met"
        over = self.value - self.limit
        relative = f"{times(self.value / self.limit)} the goal" if self.limit > 0 else "goal is 0"
        return f"missed by {self._fmt(over)} ({relative})"

    def row(self) -> list[str]:
        return [self.name, f"≤ {self._fmt(self.limit)}", self._fmt(self.value), self.verdict, self.measured]


TARGET_HEADER = ("target", "goal", "measured", "verdict", "measured as")


@dataclass
class Report:
    key: str
    title: str
    blocks: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failed: bool = False

    def add(self, text: str) -> None:
        self.blocks.append(text.strip())

    def markdown(self) -> str:
        parts = [f"## {self.title}", f"_`python -m bench.{self.key}`, {self.seconds:.0f} s_"]
        parts.extend(self.blocks)
        if self.targets:
            parts.append("Targets:\n\n" + table(TARGET_HEADER, [t.row() for t in self.targets]))
        if self.notes:
            parts.append("Observations:\n\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"


class Deadline:
    """A benchmark's time budget: loops stop early (and say so) rather than overrun."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.end

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def other_load(seconds: float = 1.0) -> str:
    """Empty when the machine is idle (nothing of the benchmark runs between benchmarks); else how
    busy it was over `seconds` and with what, since other work skews every number."""
    known = {}
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
            known[proc.pid] = proc
    total = psutil.cpu_percent(interval=seconds)
    if total < 10:
        return ""
    busy = []
    for proc in psutil.process_iter(["cmdline", "name"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid in known:
                cpu = known[proc.pid].cpu_percent(None)
            else:  # started during the interval
                times = proc.cpu_times()
                cpu = (times.user + times.system) / seconds * 100
            if proc.pid != os.getpid():
                busy.append((cpu, " ".join(proc.info.get("cmdline") or [proc.info.get("name") or "?"])))
    top = sorted(busy, reverse=True)[:3]
    named = ", ".join(f"`{' '.join(cmd.split())[:70]}` ({cpu:.0f}%)" for cpu, cmd in top)
    return f"{total:.0f}% of the CPUs busy with other work; the busiest processes: {named}"


def run_timed(key: str, title: str, body: Callable[[Report], None]) -> Report:
    """Run a benchmark body; a failure is recorded in its report, never raised past it. The machine's
    load from other work is checked just before and just after."""
    report = Report(key, title)
    before = other_load()
    if before:
        report.notes.append(f"**Machine not idle** just before this benchmark: {before}")
    started = time.monotonic()
    try:
        body(report)
    except Exception as exc:  # a benchmark that breaks must not take the others down
        import traceback

        report.failed = True
        report.notes.append(f"**The benchmark failed**: `{type(exc).__name__}: {exc}`")
        report.add("```\n" + traceback.format_exc()[-4000:] + "```")
    report.seconds = time.monotonic() - started
    after = other_load()
    if after:
        report.notes.append(f"**Machine not idle** just after this benchmark: {after}")
    return report


def run_alone(run: Callable[[], Report]) -> None:
    """`python -m bench.X`: run one benchmark and print its section (RESULTS.md is left alone)."""
    warning = network_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    report = run()
    print(report.markdown())
    if report.failed:
        sys.exit(1)


# -- the server under test -------------------------------------------------------------------------


class Server(harness.server.Server):
    """A `browserfleet serve` subprocess on a data dir of the caller's choosing. It gets none of this
    process's BROWSERFLEET_* settings: a benchmark's settings are its own (`env`, e.g. `pool_env()`).
    `stop()` records anything odd in `notes`."""

    inherit_settings = False
    key_prefix = "bf_bench_"
    python = PYTHON
    cwd = ROOT
    start_timeout = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.notes: list[str] = []

    @property
    def db_path(self) -> Path:
        """The SQLite database (benchmarks run on the default store)."""
        return self.data_dir / "browserfleet.db"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """SIGTERM, wait, then record anything odd: exit code, errors logged, processes left."""
        if self.proc is None:
            return
        try:
            super().stop(sig, timeout)
        except subprocess.TimeoutExpired:
            self.notes.append(f"server did not exit within {timeout:.0f} s of SIGTERM; killed")
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode != 0:
            self.notes.append(f"server exited with code {self.proc.returncode} after SIGTERM")
        errors = [
            line.strip()
            for line in self.log_tail(200_000).splitlines()
            if " ERROR " in line or "Traceback" in line or " CRITICAL " in line
        ]
        if errors:
            shown = "; ".join(f"`{e[:200]}`" for e in errors[:3])
            self.notes.append(f"server log has {len(errors)} error line(s), e.g. {shown}")
        time.sleep(0.2)
        left = mentioning(self.data_dir)
        if left:
            self.notes.append(
                f"processes left after the server stopped (killed now): {[p.pid for p in left]}"
            )
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        profiles = list((self.data_dir / "profiles").glob("browser-*"))
        if profiles:
            self.notes.append(f"{len(profiles)} profile dir(s) left after the server stopped")
        self.proc = None

    # -- reading the server's state --------------------------------------------------------------

    def ready_browsers(self) -> int:
        """Browsers whose debugging endpoint is open (DevToolsActivePort written): idle ones, when no
        session is running."""
        ready = 0
        for pid in self.browser_pids():
            with contextlib.suppress(psutil.Error, OSError):
                flag = next(a for a in psutil.Process(pid).cmdline() if a.startswith("--user-data-dir="))
                ready += (Path(flag.partition("=")[2]) / "DevToolsActivePort").exists()
        return ready

    def wait_for_browsers(self, count: int, timeout: float = 60, settle: float = 1.5) -> bool:
        """Until `count` browsers have their debugging port open (e.g. a full warm pool), then a
        settle: a just-launched Chromium keeps working for a while after its port opens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_browsers() >= count:
                time.sleep(settle)
                return True
            time.sleep(0.05)
        return False


def create_session(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/sessions", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text[:500]}")
    return dict(response.json())


def release_session(client: httpx.Client, session_id: str) -> None:
    response = client.post(f"/v1/sessions/{session_id}", json={"status": "REQUEST_RELEASE"})
    if response.status_code != 200:
        raise RuntimeError(f"release failed: {response.status_code} {response.text[:500]}")


@contextlib.contextmanager
def serving(env: dict[str, str] | None = None, notes: list[str] | None = None) -> Iterator[Server]:
    """A server on a fresh temporary data dir; stopped and the dir removed afterwards.

    What the stop found odd (exit code, errors logged, leftovers) is appended to `notes`.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="browserfleet-bench-"))
    server = Server(data_dir, env or {})
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if notes is not None:
            notes.extend(server.notes)
        shutil.rmtree(data_dir, ignore_errors=True)


def pool_env(pool_size: int | None, **more: str) -> dict[str, str]:
    env = {f"BROWSERFLEET_{k.upper()}": v for k, v in more.items()}
    if pool_size is not None:
        env["BROWSERFLEET_POOL_SIZE"] = str(pool_size)
    return env


def default_pool_size() -> int:
    from browserfleet.config import default_pool_size as computed

    return computed()


# -- the local site --------------------------------------------------------------------------------

# A tall canvas of seeded noise: a full-page screenshot of it is several MB whatever the format.
NOISE_PAGE = """<!doctype html>
<html><head><title>loading</title><style>body{margin:0}canvas{display:block}</style></head>
<body><canvas id="c" width="%(width)d" height="%(height)d"></canvas>
<script>
const c = document.getElementById("c"), ctx = c.getContext("2d");
const img = ctx.createImageData(c.width, c.height), d = img.data;
let s = 12345;
for (let i = 0; i < d.length; i += 4) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  d[i] = s & 255; d[i + 1] = (s >>> 8) & 255; d[i + 2] = (s >>> 16) & 255; d[i + 3] = 255;
}
ctx.putImageData(img, 0, 0);
document.title = "ready";
</script></body></html>
"""
NOISE_SIZE = (780, 2400)


@contextlib.contextmanager
def site(pages: dict[str, str] | None = None) -> Iterator[str]:
    """tests/site plus noise.html and `pages` (name → HTML), served on 127.0.0.1; yields the base URL."""
    root = Path(tempfile.mkdtemp(prefix="browserfleet-bench-site-"))
    try:
        shutil.copytree(SITE_SOURCE, root, dirs_exist_ok=True)
        width, height = NOISE_SIZE
        (root / "noise.html").write_text(NOISE_PAGE % {"width": width, "height": height})
        for name, html in (pages or {}).items():
            (root / name).write_text(html)
        with sites.serving(root, quiet_errors=True) as url:
            yield url
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- memory ----------------------------------------------------------------------------------------


def flag_under(arg: str, root: Path) -> bool:
    """`--name=<path under root>`: how Chromium and its crash handlers are told their profile."""
    name, sep, value = arg.partition("=")
    base = str(root).rstrip("/")
    return bool(sep) and name.startswith("--") and (value == base or value.startswith(base + "/"))


def browser_processes(browsers: Sequence[tuple[int, Path]]) -> list[list[psutil.Process]]:
    """For each (browser pid, profile dir): its whole process tree plus its crash handlers, which
    double-fork out of the tree but name the profile in a `--flag=value` (one pass over all processes)."""
    everyone = [(p, p.info.get("cmdline") or []) for p in psutil.process_iter(["cmdline"])]
    result = []
    for pid, profile in browsers:
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            found[root.pid] = root
            found.update((p.pid, p) for p in root.children(recursive=True))
        found.update((p.pid, p) for p, cmdline in everyone if any(flag_under(a, profile) for a in cmdline))
        result.append(list(found.values()))
    return result


@dataclass(frozen=True)
class Memory:
    pss: int
    uss: int
    rss: int
    processes: int


def memory(processes: Sequence[psutil.Process]) -> Memory:
    """Summed PSS (shared pages split among their users), USS (pages only these processes use) and RSS."""
    pss = uss = rss = count = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            pss, uss, rss, count = pss + info.pss, uss + info.uss, rss + info.rss, count + 1
    return Memory(pss, uss, rss, count)


# -- the machine -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"


def network_warning() -> str:
    """Empty inside a loopback-only network namespace; else which interfaces exist."""
    # if_nameindex() sees this process's namespace (/sys/class/net shows the one /sys was mounted in).
    with contextlib.suppress(OSError):
        others = sorted(name for _, name in socket.if_nameindex() if name != "lo")
        if others:
            return f"not in a loopback-only network namespace (interfaces: {', '.join(others)})"
    return ""


def source_state() -> str:
    """The commit, and whether src/ has uncommitted changes (with a digest of them, to spot edits)."""
    commit = _command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    diff = _command("git", "-C", str(ROOT), "diff", "HEAD", "--", "src")
    untracked = _command("git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "--", "src")
    if not diff and not untracked:
        return f"git {commit}"
    import hashlib

    digest = hashlib.sha256((diff + untracked).encode()).hexdigest()[:8]
    return f"git {commit}, uncommitted changes in src/ (digest {digest})"


def machine() -> list[tuple[str, str]]:
    memory = psutil.virtual_memory()
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("memory", f"{memory.total / 1024**3:.1f} GiB total, {memory.available / 1024**3:.1f} GiB available"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Chromium", _command(CHROMIUM, "--version")),
        ("Python", platform.python_version()),
        ("Playwright", importlib.metadata.version("playwright")),
        ("browserfleet", f"{importlib.metadata.version('browserfleet')} ({source_state()})"),
        ("network", network_warning() or "loopback-only network namespace"),
    ]
