"""CA certificates a browser trusts beyond the system's: added to its NSS database while it runs.

Chromium on Linux keeps user-added trust anchors in the NSS database `$HOME/.pki/nssdb` and asks it at
each certificate verification, so a certificate added to a running browser's database is trusted from
its next TLS connection on. That keeps sessions with `proxySettings.caCertificates` on warm pool
browsers; the one condition is that the directory exists when Chromium starts (`prepare`, called by the
launcher for every profile): a browser started without it never looks at a database made later. `prepare`
also puts an empty database there, copied from one made once per process (making one takes certutil
~90 ms, which the session's create would otherwise pay).

Certificates are added with NSS's own `certutil` (Debian's `libnss3-tools`), with TLS-server trust
only (`C,,`: not e-mail or code signing), before any client reaches the browser.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from browserfleet.browsers import process
from browserfleet.browsers.spec import TrustedCa
from browserfleet.errors import LaunchFailed

CERTUTIL = "certutil"
TRUST = "C,,"  # a CA trusted to issue TLS server certificates, and nothing else
TIMEOUT = 30.0  # seconds for certutil to add one certificate
log = logging.getLogger(__name__)
_template: dict[str, bytes] | None = None  # the files of an empty database, once made


def nssdb(home: Path) -> Path:
    return home / ".pki" / "nssdb"


def prepare(home: Path, uid: int | None) -> None:
    """Make an empty NSS database in a new profile's home, the browser's own (blocking: the launcher
    calls it in a thread)."""
    db = nssdb(home)
    db.mkdir(parents=True, exist_ok=True)
    made = [db.parent, db]
    for name, data in (_template or {}).items():
        (db / name).write_bytes(data)
        made.append(db / name)
    if uid is not None:
        for path in made:
            os.chown(path, uid, uid)


async def make_empty_database() -> None:
    """Make (once per process, on the loop) the empty database `prepare` copies. Without certutil, or if
    it fails, there is none: Chromium then makes the database itself, and adding certificates costs more."""
    global _template
    if _template is not None:
        return
    if not available():
        _template = {}
        return
    # No lock (it would belong to one event loop): two first launches at once both make one, harmlessly.
    with tempfile.TemporaryDirectory(prefix="bf-nssdb-") as folder:
        try:
            await _certutil(["-N", "-d", f"sql:{folder}", "--empty-password"])
        except LaunchFailed as exc:
            log.warning("no empty NSS database to copy into profiles: %s (%s)", exc, exc.detail)
            _template = {}
            return
        _template = await asyncio.to_thread(_files, Path(folder))


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def available() -> bool:
    """Whether this host can add certificates to a browser (`certutil` is installed)."""
    return shutil.which(CERTUTIL) is not None


async def add(home: Path, certificates: Sequence[TrustedCa], uid: int | None) -> None:
    """Trust `certificates` in the browser whose $HOME is `home` (on the host). LaunchFailed if NSS
    refuses (the browser then does not serve the session)."""
    if not certificates:
        return
    db = nssdb(home)
    if not db.is_dir():
        raise LaunchFailed("the browser has no certificate database", f"{db} is missing")
    for certificate in certificates:
        # From a file, not stdin: certutil may exit before reading its input (a pipe closed under the write).
        source = db.parent / f"{certificate.id}.der"
        await asyncio.to_thread(source.write_bytes, certificate.der)
        try:
            await _certutil(["-A", "-d", f"sql:{db}", "-n", certificate.id, "-t", TRUST, "-i", str(source)])
        finally:
            source.unlink(missing_ok=True)
    if uid is not None:
        # certutil runs as the server (a jailed browser's uid cannot reach the host's profiles folder), so
        # what it made is handed to the browser, which reads and writes its own database.
        for path in (db, *db.iterdir()):
            os.chown(path, uid, uid)


async def _certutil(args: list[str]) -> None:
    name = args[args.index("-n") + 1] if "-n" in args else "(none)"
    try:
        with process.spawning() as spawned:  # asyncio collects its exit, not `reap_adopted`
            proc = await asyncio.create_subprocess_exec(
                CERTUTIL,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"},
                preexec_fn=process.die_with_parent,
            )
            spawned(proc.pid)
    except OSError as exc:
        raise LaunchFailed("cannot run certutil to add the session's CA certificates", str(exc)) from exc
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except BaseException as exc:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise LaunchFailed(f"certutil did not add certificate {name} in {TIMEOUT:g} s") from exc
        raise
    finally:
        process.collected(proc.pid)
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()
        raise LaunchFailed(f"the browser's certificate database refused certificate {name}", detail)
