"""The walls around each browser besides its network namespace and the gateway's CDP policy.

A browser is hostile: whatever a page or a CDP client makes it do, it must not reach the host's files,
the server's secrets or other sessions. On a host that allows it (`probe`), each browser is *jailed*:

- it runs as an unprivileged uid of its own (one per running browser, from `UidPool`), never as root;
- Chromium's own sandbox is on (no `--no-sandbox`): renderers get their own user, PID and network
  namespaces and seccomp-bpf;
- it lives in a mount namespace (bubblewrap) that shows only the system's read-only files Chromium
  needs (`/usr`, a few entries of `/etc`), a private `/tmp`, its own profile at `/session`, and the
  session's uploads, read-only, at `/tmp/.uploads` (where Browserbase documents them): not the data dir,
  the database, other profiles, the server's code, `/etc/passwd` or the host's `/proc`;
- PID and IPC namespaces of its own, so it sees no other process on the host; when the jail's first
  process dies the kernel kills everything in it;
- an environment with nothing of the server's: only what Chromium needs, set here.

Where the host cannot jail (not root, no bubblewrap), Chromium's own sandbox still runs if user
namespaces work; where even that fails, browsers run unsandboxed only if the operator opted in.
`View` translates paths between the host and what the browser sees, so the rest of the server never
has to know which kind of browser it talks to.
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from browserfleet.errors import LaunchFailed

INSIDE_PROFILE = PurePosixPath("/session")
INSIDE_UPLOADS = PurePosixPath("/tmp/.uploads")
TMP_SIZE = 512 * 1024 * 1024  # the jail's private /tmp (memory-backed, and charged to its cgroup)
# What Chromium reads of /etc: fonts, TLS roots, the loader cache, the time zone, operator policies.
# Not passwd, group, hosts or anything else that describes the host.
ETC_ENTRIES = (
    "fonts",
    "ssl",
    "ca-certificates",
    "ld.so.cache",
    "localtime",
    "timezone",
    "chromium",
    "mime.types",
)
READ_ONLY_DIRS = ("/usr", "/opt/google", "/var/cache/fontconfig")


class Mode(enum.StrEnum):
    JAILED = "jailed"  # own uid + mount/PID/IPC namespaces + Chromium's sandbox
    CHROMIUM_SANDBOX = "chromium-sandbox"  # Chromium's own sandbox only (the server is not root)
    UNSANDBOXED = "unsandboxed"  # --no-sandbox: only with BROWSERFLEET_ALLOW_UNSANDBOXED


@dataclass(frozen=True)
class Support:
    """What this host offers, from `probe`."""

    root: bool
    bwrap: str | None
    setpriv: str | None
    user_namespaces: bool  # an unprivileged process can make a user namespace (Chromium's sandbox)

    @property
    def best(self) -> Mode:
        if self.root and self.bwrap and self.setpriv and self.user_namespaces:
            return Mode.JAILED
        if not self.root and self.user_namespaces:
            return Mode.CHROMIUM_SANDBOX
        return Mode.UNSANDBOXED

    def missing(self) -> str:
        """Why the host cannot jail browsers (empty when it can)."""
        reasons = []
        if not self.root:
            reasons.append("the server is not root (no uid of its own per browser, no mount namespace)")
        if not self.bwrap:
            reasons.append("bubblewrap (bwrap) is not installed")
        if not self.setpriv:
            reasons.append("setpriv (util-linux) is not installed")
        if not self.user_namespaces:
            reasons.append("user namespaces are off, so Chromium's own sandbox cannot start")
        return "; ".join(reasons)


_USERNS_PROBE = """
import ctypes, os, sys
uid = int(sys.argv[1])
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.unshare(0x10000000) == 0 else 1)  # CLONE_NEWUSER
"""


def probe(uid: int) -> Support:
    """Ask the host (a child process tries a user namespace as `uid`, or as itself when not root)."""
    result = subprocess.run(
        [sys.executable, "-c", _USERNS_PROBE, str(uid)], capture_output=True, timeout=30, check=False
    )
    return Support(
        root=os.geteuid() == 0,
        bwrap=shutil.which("bwrap"),
        setpriv=shutil.which("setpriv"),
        user_namespaces=result.returncode == 0,
    )


class UidPool:
    """Unprivileged uids for browsers, one per running browser; a uid is handed out again only after
    the browser that had it is gone (killed, reaped, its cgroups removed)."""

    def __init__(self, base: int, count: int) -> None:
        self._free = list(range(base + count - 1, base - 1, -1))
        self._used: set[int] = set()

    def take(self) -> int:
        if not self._free:
            raise LaunchFailed(
                "every sandbox uid is in use by a browser", "raise BROWSERFLEET_SANDBOX_UID_COUNT"
            )
        uid = self._free.pop()
        self._used.add(uid)
        return uid

    def give_back(self, uid: int) -> None:
        if uid in self._used:
            self._used.discard(uid)
            self._free.append(uid)


@dataclass(frozen=True)
class View:
    """How one browser sees its files: its profile at `inside` (jailed) or at the host path itself."""

    profile: Path
    inside: PurePosixPath | None = None

    def to_browser(self, host_path: Path) -> str:
        """The path the browser knows a file of its profile by."""
        if self.inside is None:
            return str(host_path)
        return str(self.inside / host_path.relative_to(self.profile))

    def to_host(self, browser_path: str) -> Path | None:
        """The host path of a file the browser names, or None if it is not in its profile.

        Lexical only: the result may still be a link the browser planted, so whoever opens it must
        not follow links (see `artifacts.capture`).
        """
        normal = PurePosixPath(os.path.normpath(browser_path))
        root = self.inside if self.inside is not None else PurePosixPath(self.profile)
        if not normal.is_absolute() or not normal.is_relative_to(root):
            return None
        return self.profile / normal.relative_to(root)

    @property
    def uploads(self) -> str:
        """Where the browser finds the session's uploads."""
        return str(INSIDE_UPLOADS) if self.inside is not None else str(self.profile / "uploads")


def jail_command(support: Support, command: list[str], profile: Path, uid: int) -> list[str]:
    """`command` (Chromium's, with paths as the jail sees them) wrapped in bubblewrap and setpriv."""
    assert support.bwrap is not None and support.setpriv is not None
    args = [
        support.bwrap,
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "browser",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for parent in ("/etc", "/var", "/var/cache", "/opt"):
        args += ["--perms", "0755", "--dir", parent]
    for path in READ_ONLY_DIRS:
        args += ["--ro-bind-try", path, path]
    for entry in ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    args += [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--size",
        str(TMP_SIZE),
        "--tmpfs",
        "/tmp",
        "--bind",
        str(profile),
        str(INSIDE_PROFILE),
        "--ro-bind",
        str(profile / "uploads"),
        str(INSIDE_UPLOADS),
        "--clearenv",
    ]
    for name, value in environment(INSIDE_PROFILE, "/tmp").items():
        args += ["--setenv", name, value]
    args += ["--chdir", str(INSIDE_PROFILE / "home"), "--"]
    # Last, as root inside the jail: become the browser's uid for good, with no capabilities left and
    # no way back through setuid binaries.
    args += [
        support.setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        *command,
    ]
    return args


def environment(profile: PurePosixPath | Path, tmp: str) -> dict[str, str]:
    """The whole environment a browser gets: nothing of the server's (no keys, no database URL).

    HOME and XDG_CONFIG_HOME hold crash reports and default downloads, so they go with the profile.
    """
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": f"{profile}/home",
        "XDG_CONFIG_HOME": f"{profile}/xdg-config",
        "XDG_CACHE_HOME": f"{profile}/cache",
        "TMPDIR": tmp,
    }
