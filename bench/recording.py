"""Recording: what a session's screencast recording costs, with one busy tab and with a still one.

No warm pool (`BROWSERFLEET_POOL_SIZE=0`): the session's browser is the only one the server runs, and
no pool refill launches a browser during a measurement. Each measurement window is a session of its
own: created (recording on or off; `logSession` left on, the default, in both), a Playwright client
connects through `connectUrl`, sets a 1280x720 viewport and goes to a local page, a settle, then the
window: CPU seconds per second of (a) the session's browser (the pid's whole tree plus its crash
handlers, sampled every 0.5 s so processes that come and go are counted) and (b) the server process
(all its threads; the encoder subprocesses are not in it). Then the client disconnects and the session
is released; with recording on, `GET /v1/sessions/{id}/replays` is polled until the replay is READY
while the encoder subprocess (`python -m browserfleet.artifacts.encode`, a child of the server) is
sampled every 0.05 s for its CPU time.

Busy page: a 160 px box travelling around the 1280x720 viewport (a CSS transform animation) while the
page scrolls itself at 240 px/s (set at every animation frame) through 20,000 px of striped text, so
every screencast frame differs. Windows alternate recording on, off, off, on, so a linear drift in
the machine's load hits both alike. Still page: a heading and a paragraph, nothing moving; recording
on, then off.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.sync_api import Playwright, sync_playwright

from bench.common import (
    DASH,
    MB,
    QUICK,
    TIMES,
    Deadline,
    Report,
    Server,
    Stats,
    browser_processes,
    create_session,
    num,
    pool_env,
    release_session,
    run_alone,
    run_timed,
    serving,
    site,
    table,
)
from browserfleet.artifacts.video import read_frames

BUSY_S = 5.0 if QUICK else 20.0
STILL_S = 3.0 if QUICK else 10.0
BUSY_ORDER = (True, False, False, True)  # recording on / off, ABBA
STILL_ORDER = (True, False)
SETTLE_S = 2.0
SAMPLE_S = 0.5
ENCODER_SAMPLE_S = 0.05
READY_POLL_S = 0.1
READY_TIMEOUT_S = 180.0
BUDGET_S = 420.0
WIDTH, HEIGHT = 1280, 720
ENCODER_MODULE = "browserfleet.artifacts.encode"

BUSY_PAGE = """<!doctype html>
<html><head><title>loading</title><style>
body { margin: 0; font: 22px/40px sans-serif;
       background: repeating-linear-gradient(#fff 0, #fff 40px, #dde 40px, #dde 80px); }
p { margin: 0; padding: 0 40px; height: 40px; }
#box { position: fixed; left: 0; top: 0; width: 160px; height: 160px; background: #c33;
       animation: tour 4s linear infinite; }
@keyframes tour {
  0% { transform: translate(0, 0); } 25% { transform: translate(1120px, 0); }
  50% { transform: translate(1120px, 560px); } 75% { transform: translate(0, 560px); }
  100% { transform: translate(0, 0); }
}
</style></head>
<body><div id="box"></div><main id="text"></main>
<script>
const main = document.getElementById("text");
for (let i = 0; i < 500; i++) {
  const p = document.createElement("p");
  p.textContent = `Line ${i}: the quick brown fox jumps over the lazy dog, ${(i * 7919) % 10007}.`;
  main.append(p);
}
window.ticks = 0;
function step(now) {  // 240 px a second whatever the frame rate, from the top again at the bottom
  window.ticks++;
  window.scrollTo(0, (now * 0.24) % (document.documentElement.scrollHeight - innerHeight));
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
document.title = "ready";
</script></body></html>
"""
STILL_PAGE = """<!doctype html>
<html><head><title>ready</title><style>body { font: 22px sans-serif; margin: 40px; }</style></head>
<body><h1>A still page</h1><p>Nothing on this page moves after it has loaded.</p></body></html>
"""
PAGES = {"recording-busy.html": BUSY_PAGE, "recording-still.html": STILL_PAGE}


# -- CPU -------------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system) a changing set of processes spends between the first sample and
    the last. `find` gives the set at each sample. Processes found at the first sample count from their
    CPU time then; any found later is new since the previous sample and counts from zero (or every
    process does, with `from_zero`). What a process spends after the last sample that saw it is lost."""

    def __init__(self, find: Callable[[], Iterable[psutil.Process]], from_zero: bool = False) -> None:
        self.find = find
        self.from_zero = from_zero
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self.samples = 0

    def sample(self) -> None:
        for proc in self.find():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                used = float(times.user + times.system)
                if proc.pid not in self.first:
                    self.first[proc.pid] = used if self.samples == 0 and not self.from_zero else 0.0
                    self.kinds[proc.pid] = _kind(proc)
                self.last[proc.pid] = used
        self.samples += 1

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def by_kind(self) -> dict[str, float]:
        kinds: dict[str, float] = {}
        for pid, used in self.last.items():
            kind = self.kinds.get(pid, "?")
            kinds[kind] = kinds.get(kind, 0.0) + used - self.first[pid]
        return kinds


def _kind(proc: psutil.Process) -> str:
    """A Chromium process's role: its --type (utility ones with their service), else "browser"."""
    try:
        args = proc.cmdline()
    except psutil.Error:
        return "?"
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    kind = flags.get("type", "browser" if args and "chrom" in args[0] else args[0] if args else "?")
    if kind == "utility" and "utility-sub-type" in flags:
        kind += f" ({flags['utility-sub-type'].rsplit('.', 1)[-1]})"
    return str(kind)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    times = psutil.cpu_times()
    total = float(sum(times))
    return total - float(times.idle) - float(getattr(times, "iowait", 0.0)), total


def _encoders(server: Server) -> list[psutil.Process]:
    found = []
    with contextlib.suppress(psutil.Error):
        for child in server.process().children():
            with contextlib.suppress(psutil.Error):
                if ENCODER_MODULE in " ".join(child.cmdline()):
                    found.append(child)
    return found


# -- one window ------------------------------------------------------------------------------------


@dataclass
class Window:
    page: str  # "busy" or "still"
    record: bool
    seconds: float = 0.0
    browser_cpu: float = 0.0  # CPU seconds in the window
    browser_by_kind: dict[str, float] = field(default_factory=dict)  # the same by process type
    server_cpu: float = 0.0
    machine_busy: float = 0.0  # % of all cores
    browser_processes: int = 0
    ticks_per_s: float = 0.0  # the page's requestAnimationFrame callbacks
    frames_in_window: int = 0  # screencast frames logged during the window
    jpeg_bytes_in_window: int = 0
    frame_size: str = DASH
    frames_total: int = 0  # in the replay (GET /pages after encoding)
    recording_status: str = ""
    replay_ms: int = 0  # endTimeMs - startTimeMs
    ready_s: float = float("nan")  # release → replay READY
    encoder_cpu: float = float("nan")
    encoders_seen: int = 0
    hls_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "on" if self.record else "off"

    def pct(self, cpu: float) -> float:
        return 100 * cpu / self.seconds if self.seconds else float("nan")


def _jpeg_size(jpeg: bytes) -> str:
    """WIDTHxHEIGHT from a JPEG's start-of-frame marker."""
    i = 2
    while i + 9 < len(jpeg):
        if jpeg[i] != 0xFF:
            i += 1
            continue
        marker = jpeg[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(jpeg[i + 5 : i + 7], "big")
            width = int.from_bytes(jpeg[i + 7 : i + 9], "big")
            return f"{width}{TIMES}{height}"
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 2 if marker != 0xFF else 1
            continue
        i += 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
    return "?"


def _frames_path(server: Server, session_id: str, page_index: int = 0) -> Path:
    return server.data_dir.resolve() / "sessions" / session_id / "pages" / str(page_index) / "frames.bin"


def _window(
    server: Server, http: httpx.Client, pw: Playwright, url: str, page_kind: str, record: bool, seconds: float
) -> Window:
    window = Window(page_kind, record)
    session = create_session(
        http, keepAlive=True, timeout=600, browserSettings={"recordSession": record, "logSession": True}
    )
    session_id = session["id"]
    try:
        pid, profile = server.session_browser(session_id)
        browser = pw.chromium.connect_over_cdp(session["connectUrl"])
        try:
            page = browser.contexts[0].pages[0]
            page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
            page.goto(url)
            page.wait_for_function("document.title === 'ready'")
            time.sleep(SETTLE_S)
            ticks0 = float(page.evaluate("window.ticks || 0"))
            tree = CpuMeter(lambda: browser_processes([(pid, profile)])[0])
            own = CpuMeter(lambda: [server.process()])
            busy0, total0 = _machine_busy()
            wall0 = time.time()
            start = time.perf_counter()
            tree.sample()
            own.sample()
            while (left := seconds - (time.perf_counter() - start)) > 0:
                time.sleep(min(SAMPLE_S, left))
                tree.sample()
                own.sample()
            window.seconds = time.perf_counter() - start
            wall1 = time.time()
            busy1, total1 = _machine_busy()
            ticks1 = float(page.evaluate("window.ticks || 0"))
        finally:
            browser.close()  # disconnects; the keepAlive session goes on until released
        window.browser_cpu, window.server_cpu = tree.seconds, own.seconds
        window.browser_processes = len(tree.last)
        window.browser_by_kind = tree.by_kind()
        window.machine_busy = 100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")
        window.ticks_per_s = (ticks1 - ticks0) / window.seconds
        if record:
            try:
                logged = list(read_frames(_frames_path(server, session_id)))
            except (OSError, ValueError) as exc:
                window.notes.append(f"frame log of {session_id} not readable: {exc}")
                logged = []
            in_window = [jpeg for stamp, jpeg in logged if wall0 * 1000 <= stamp <= wall1 * 1000]
            window.frames_in_window = len(in_window)
            window.jpeg_bytes_in_window = sum(map(len, in_window))
            if in_window:
                window.frame_size = _jpeg_size(in_window[0])
    finally:
        released = time.perf_counter()
        release_session(http, session_id)
    if record:
        _await_replay(server, http, session_id, released, window)
    pages = http.get(f"/v1/sessions/{session_id}/pages").json()
    if pages:
        window.recording_status = str(pages[0].get("recording"))
        window.frames_total = int(pages[0].get("frames") or 0)
    return window


def _await_replay(
    server: Server, http: httpx.Client, session_id: str, released: float, window: Window
) -> None:
    """Until the replay is READY: how long that took, and the encoder's CPU time (sampled)."""
    encoder = CpuMeter(lambda: _encoders(server), from_zero=True)
    deadline = time.monotonic() + READY_TIMEOUT_S
    polled = 0.0
    replays: dict[str, Any] = {}
    while time.monotonic() < deadline:
        encoder.sample()
        if time.perf_counter() - polled >= READY_POLL_S:
            polled = time.perf_counter()
            replays = http.get(f"/v1/sessions/{session_id}/replays").json()
            if replays.get("pageCount", 0) >= 1:
                window.ready_s = time.perf_counter() - released
                break
        time.sleep(ENCODER_SAMPLE_S)
    else:
        window.notes.append(f"replay of {session_id} not READY within {READY_TIMEOUT_S:.0f} s")
        return
    window.encoders_seen = len(encoder.last)
    if window.encoders_seen:
        window.encoder_cpu = encoder.seconds
    else:
        window.notes.append(f"the encoder of {session_id} came and went between two samples")
    first = replays["pages"][0]
    window.replay_ms = int(first["endTimeMs"]) - int(first["startTimeMs"])
    hls = _frames_path(server, session_id, int(first["pageId"])).parent / "hls"
    with contextlib.suppress(OSError):
        window.hls_bytes = sum(p.stat().st_size for p in hls.iterdir() if p.is_file())


# -- the benchmark ---------------------------------------------------------------------------------


def _measure(report: Report) -> None:
    deadline = Deadline(BUDGET_S)
    windows: list[Window] = []
    with site(PAGES) as base, serving(pool_env(0), notes=report.notes) as server, sync_playwright() as pw:
        with server.client() as http:
            plan = [("busy", record, BUSY_S) for record in BUSY_ORDER]
            plan += [("still", record, STILL_S) for record in STILL_ORDER]
            for kind, record, seconds in plan:
                if deadline.expired:
                    report.notes.append(f"time budget ({BUDGET_S:.0f} s) spent: windows left out")
                    break
                url = f"{base}/recording-{kind}.html"
                window = _window(server, http, pw, url, kind, record, seconds)
                report.notes.extend(window.notes)
                windows.append(window)
    _write(report, windows)


def _median(values: list[float]) -> float:
    return Stats.of(values).median


def _write(report: Report, windows: list[Window]) -> None:
    busy = [w for w in windows if w.page == "busy"]
    still = [w for w in windows if w.page == "still"]
    report.add(
        f"Each window is a session of its own, alone on the server (no warm pool), with a Playwright "
        f"client connected through `connectUrl` and a {WIDTH}{TIMES}{HEIGHT} viewport; `logSession` on "
        "(the default) in every session, `recordSession` on or off. CPU is CPU seconds per second of "
        "wall time, as % of one core (the machine has "
        f'{psutil.cpu_count()} cores). "Browser" is the session\'s Chromium, all its processes; '
        '"server" is the `browserfleet serve` process alone (the encoder runs in a subprocess of its '
        'own, after the session). "Machine" is how busy all cores were during the window, this '
        "benchmark included: other work on the machine shows there."
    )
    if busy:
        report.add(
            f"**Busy tab** (a box travelling around the viewport, the page scrolling itself at 240 px/s), "
            f"windows of {BUSY_S:.0f} s in this order: "
            f"{', '.join(w.label for w in busy)}:\n\n" + _window_table(busy)
        )
        report.add(_comparison(busy, "busy tab"))
        report.add(_kinds_table(busy))
        recorded = [w for w in busy if w.record]
        if recorded:
            report.add(
                "**After each recorded busy session**: its replay (frames and duration from "
                "`GET /v1/sessions/{id}/pages` and `/replays`), the time from the release until "
                "`/replays` lists it (polled every 0.1 s), the encoder subprocess's CPU (sampled every "
                "0.05 s, so a little is missed) and the HLS files on disk:\n\n" + _replay_table(recorded)
            )
    if still:
        report.add(
            f"**Still page**, windows of {STILL_S:.0f} s (recording on, then off):\n\n"
            + _window_table(still)
            + "\n\n"
            + _comparison(still, "still page")
        )
        recorded = [w for w in still if w.record]
        if recorded:
            report.add("**After the recorded still session**:\n\n" + _replay_table(recorded))


def _window_table(windows: list[Window]) -> str:
    rows = []
    for i, w in enumerate(windows, 1):
        fps = w.frames_in_window / w.seconds if w.record and w.seconds else float("nan")
        kb = w.jpeg_bytes_in_window / w.frames_in_window / 1000 if w.frames_in_window else float("nan")
        rows.append(
            [
                str(i),
                w.label,
                num(w.pct(w.browser_cpu), "%"),
                str(w.browser_processes),
                num(w.pct(w.server_cpu), "%"),
                num(w.machine_busy, "%"),
                num(w.ticks_per_s) if w.page == "busy" else DASH,
                str(w.frames_in_window) if w.record else DASH,
                num(fps),
                num(kb, "KB"),
                w.frame_size if w.record else DASH,
            ]
        )
    header = (
        "window",
        "recording",
        "browser CPU",
        "browser processes",
        "server CPU",
        "machine busy",
        "page rAF/s",
        "frames logged",
        "frames/s",
        "JPEG (mean)",
        "frame size",
    )
    return table(header, rows)


def _comparison(windows: list[Window], what: str) -> str:
    def median(record: bool, pick: Callable[[Window], float]) -> float:
        return _median([pick(w) for w in windows if w.record == record])

    fps = median(True, lambda w: w.frames_in_window / w.seconds if w.seconds else float("nan"))
    rows = []
    for label, pick in (
        ("browser", lambda w: w.pct(w.browser_cpu)),
        ("server", lambda w: w.pct(w.server_cpu)),
        ("browser + server", lambda w: w.pct(w.browser_cpu + w.server_cpu)),
    ):
        on, off = median(True, pick), median(False, pick)
        per_frame = (on - off) * 10 / fps if fps else float("nan")  # % of a core → ms per second
        rows.append([label, num(on, "%"), num(off, "%"), num(on - off, "%"), num(per_frame, "ms")])
    n_on = sum(w.record for w in windows)
    n_off = len(windows) - n_on
    per = (
        f"; per frame: the difference divided by the median {num(fps)} frames/s logged, an average that "
        "need not scale with the frame rate"
        if fps
        else ""
    )
    return (
        f"Recording on vs off, {what} (median of {n_on} and {n_off} windows; CPU as % of one core{per}):\n\n"
        + table(("CPU", "recording on", "recording off", "on - off", "on - off per frame"), rows)
    )


def _kinds_table(windows: list[Window]) -> str:
    """Where in Chromium the difference is: the browser's CPU by process type, each window."""
    kinds = sorted({kind for w in windows for kind in w.browser_by_kind})

    def share(w: Window, kind: str) -> float:
        return w.pct(w.browser_by_kind.get(kind, 0.0))

    def median(record: bool, kind: str) -> float:
        return _median([share(w, kind) for w in windows if w.record == record])

    kinds.sort(key=lambda kind: -sum(share(w, kind) for w in windows))
    rows = [
        [
            f"`{kind}`",
            *(num(share(w, kind), "%") for w in windows),
            num(median(True, kind) - median(False, kind), "%"),
        ]
        for kind in kinds
    ]
    header = ("Chromium process", *(f"{i} ({w.label})" for i, w in enumerate(windows, 1)), "on - off")
    return (
        "The browser's CPU by process type (`--type=`), each window above, and the difference of the "
        "medians (% of one core):\n\n" + table(header, rows)
    )


def _replay_table(windows: list[Window]) -> str:
    rows = []
    for w in windows:
        seconds = w.replay_ms / 1000
        minutes = seconds / 60
        rows.append(
            [
                w.recording_status,
                num(w.ticks_per_s) if w.page == "busy" else DASH,
                str(w.frames_total),
                num(seconds, "s"),
                num(w.frames_total / seconds if seconds else float("nan")),
                num(w.ready_s, "s"),
                num(w.encoder_cpu, "s"),
                num(w.encoder_cpu / minutes if minutes else float("nan"), "s"),
                num(w.hls_bytes / MB, "MB"),
                num(w.hls_bytes / MB / minutes if minutes else float("nan"), "MB"),
            ]
        )
    header = (
        "status",
        "page rAF/s",
        "frames",
        "replay length",
        "frames/s",
        "release → READY",
        "encoder CPU",
        "encoder CPU per min of video",
        "HLS",
        "HLS per min of video",
    )
    return table(header, rows)


def run() -> Report:
    return run_timed("recording", "6. Recording: CPU of a recorded tab", _measure)


if __name__ == "__main__":
    run_alone(run)
