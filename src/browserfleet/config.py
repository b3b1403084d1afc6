"""Server settings, read from `BROWSERFLEET_*` environment variables and CLI flags."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import psutil
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from browserfleet.browsers.addresses import EgressRules, parse_allow_list, parse_hosts
from browserfleet.browsers.spec import ProxyRule
from browserfleet.browsers.upstream import parse_pool


def default_pool_size() -> int:
    """Two ready browsers per core, at most 8, and no more than a tenth of memory allows (~150 MB each)."""
    by_memory = psutil.virtual_memory().total // (10 * 150 * 1024 * 1024)
    return int(max(1, min(2 * (os.cpu_count() or 1), 8, by_memory)))


def default_session_memory_mb() -> int:
    """A quarter of the machine's memory, at least 1 GiB and at most 8 GiB."""
    quarter = psutil.virtual_memory().total // (4 * 1024 * 1024)
    return int(min(8192, max(1024, quarter)))


def default_session_cpus() -> float:
    """Half the machine's cores, but at least two: a launch runs several processes at once, and a
    one-core quota made it ~370 ms slower (bench/RESULTS.md, sandbox launch cost)."""
    return max(2.0, (os.cpu_count() or 2) / 2)


def default_session_disk_mb(data_dir: Path) -> int:
    """10 GiB, or a tenth of the data dir's free disk when that is less (at least 1 MiB)."""
    existing = data_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    return max(1, min(10 * 1024, shutil.disk_usage(existing).free // (10 * 1024 * 1024)))


def default_reassembly_budget() -> int:
    return int(min(1024, psutil.virtual_memory().total // (4 * 1024 * 1024)))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROWSERFLEET_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 7800
    data_dir: Path = Path("./data")
    # SQLAlchemy async URL; empty means SQLite in the data dir.
    database_url: str = ""
    # Used in URLs the server mints (connectUrl, seleniumRemoteUrl) when set; else the request's host.
    public_url: str = ""
    # Bootstrap project: its API key (else generated once) and, when set, its limits.
    api_key: str = ""
    concurrency: int | None = Field(default=None, ge=1)
    default_timeout: int | None = Field(default=None, ge=60, le=21600)
    # ... and its session creations per rolling minute (0: no limit); unset leaves the project's as it is.
    creations_per_minute: int | None = Field(default=None, ge=0)

    chromium_path: str = "/usr/lib/chromium/chromium"
    # Extra Chromium flags, shell-style quoted.
    chromium_args: str = ""
    # Each browser in a network namespace of its own (debugging port unreachable from the host, egress
    # through the server's proxy). None: whenever the host allows it.
    isolate_network: bool | None = None
    # Warm pool: browsers launched ahead of demand (default: sized to the machine), at most
    # `max_parallel_launches` launching at once, and none kept idle when free memory is below the floor.
    pool_size: int = Field(default_factory=lambda: default_pool_size(), ge=0)
    max_parallel_launches: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1)
    pool_min_free_mb: int = Field(default=1024, ge=0)
    # Whether isolated browsers' pages may reach this host's loopback (127.0.0.0/8, ::1): shorthand for
    # adding those to `egress_allow`.
    allow_loopback: bool = False
    # How long a launched browser may take to open its debugging endpoint.
    launch_timeout: float = 30.0
    # Seconds between CPU/memory samples of each session's browser.
    sample_interval: float = Field(default=5.0, gt=0)
    # Largest file `POST /v1/sessions/{id}/uploads` accepts.
    max_upload_mb: int = Field(default=100, ge=1)
    # CDP gateway: the largest client → browser message (a 50 MB upload is ~67 MB of base64), and the
    # bytes all clients' unfinished messages may hold at once (default: 1 GiB, or a quarter of memory).
    max_message_mb: int = Field(default=100, ge=1)
    reassembly_budget_mb: int = Field(default_factory=lambda: default_reassembly_budget(), ge=1)

    # The sandbox (docs/security.md): where the host cannot give browsers Chromium's own sandbox, they
    # are not started at all unless the operator accepts running them without it.
    allow_unsandboxed: bool = False
    # Jailed browsers run as uids base .. base+count-1, one per running browser (no /etc/passwd entry).
    sandbox_uid_base: int = Field(default=800_000, ge=1000)
    sandbox_uid_count: int = Field(default=4096, ge=1)
    # Per-browser limits where the host has cgroups (0 turns one off).
    session_memory_mb: int = Field(default_factory=lambda: default_session_memory_mb(), ge=0)
    session_cpus: float = Field(default_factory=lambda: default_session_cpus(), ge=0)
    session_pids: int = Field(default=2048, ge=0)

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def extra_chromium_args(self) -> list[str]:
        return shlex.split(self.chromium_args)

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'browserfleet.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir.resolve() / "sessions"

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir.resolve() / "profiles"

    # Egress: destinations pages may reach although the rules refuse them (CIDRs, address:port,
    # [IPv6]:port, name:port), and fixed name resolutions for the egress proxy (a testing aid).
    egress_allow: str = ""
    egress_hosts: str = ""
    # Disk quota for each session's downloads and uploads together, in MiB (0: none); unset: sized to
    # the data dir's free disk at start (`session_disk_quota`).
    session_disk_mb: int | None = Field(default=None, ge=0)
    # Contexts (docs/contexts.md): the key their saved profiles are encrypted with is derived from this
    # secret when set (else from one generated once and kept in the store), and a profile larger than
    # `context_max_mb` is not saved (the last saved copy is kept).
    secret: str = Field(default="", repr=False)
    context_max_mb: int = Field(default=256, ge=1)

    # Seconds a session waits for its first client (CDP, or WebDriver) before it ends as TIMED_OUT; 0:
    # it waits until its own timeout. The contract's "~5 minutes to connect after create".
    connect_window: float = Field(default=300.0, ge=0)
    # `POST /v1/fetch`: how long a page may take to load (504 past it), and the largest response body
    # (and rendered page) it returns (502 past it).
    fetch_timeout: float = Field(default=30.0, gt=0, le=600)
    fetch_max_mb: int = Field(default=10, ge=1, le=100)

    @field_validator("egress_allow")
    @classmethod
    def _check_allow(cls, value: str) -> str:
        parse_allow_list(value)  # a bad entry stops the server at start, named in the error
        return value

    @field_validator("egress_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        parse_hosts(value)
        return value

    def egress_rules(self) -> EgressRules:
        return EgressRules.from_settings(self.egress_allow, self.allow_loopback, self.egress_hosts)

    def session_disk_quota(self) -> int | None:
        """The per-session disk quota in bytes (None: no quota), the default fixed at the first call."""
        if self.session_disk_mb is None:
            self.session_disk_mb = default_session_disk_mb(self.data_dir)
        return self.session_disk_mb * 1024 * 1024 or None

    # blockAds: the filter lists (EasyList syntax), comma-separated paths; empty: the snapshots of Debian's
    # webext-ublock-origin-chromium package (browsers/adblock.py, docs/network-policy.md).
    filter_lists: str = ""

    @property
    def filter_list_paths(self) -> list[Path]:
        return [Path(p.strip()) for p in self.filter_lists.split(",") if p.strip()]

    # The operator's upstream proxies, for `proxies: true`, `{type: "browserbase"}` and the connect URL's
    # `enableProxy=true` (docs/proxies.md): a JSON array of entries like a create body's `proxies`
    # (optionally labelled with a `geolocation`), or a comma-separated list of http:// proxy URLs.
    proxies: str = ""

    @field_validator("proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        parse_pool(value)  # a bad entry stops the server at start, named in the error
        return value

    def server_proxies(self) -> tuple[ProxyRule, ...]:
        return parse_pool(self.proxies)
