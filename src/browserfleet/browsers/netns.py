"""Network namespaces: each browser gets one with only a loopback interface, so its debugging port
exists nowhere the host's processes (or anyone else) can reach. The server reaches into it by
creating sockets there (`socket_in`); the browser reaches out only through the egress proxy.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def enter_new() -> None:
    """In a child before exec: a fresh network namespace whose loopback is up."""
    _check(_libc.unshare(CLONE_NEWNET))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(sock, SIOCSIFFLAGS, request)


def supported() -> bool:
    """Whether this host lets us make network namespaces (root or CAP_SYS_ADMIN, and a kernel with them)."""
    probe = (
        "import ctypes, sys; from browserfleet.browsers import netns\n"
        "try:\n    netns.enter_new()\nexcept OSError:\n    sys.exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def open_of(pid: int) -> int:
    """A file descriptor for the network namespace process `pid` is in (the caller closes it)."""
    return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def inside(namespace_fd: int) -> Iterator[None]:
    """Run a block in another network namespace (this thread only), then come back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(namespace_fd, CLONE_NEWNET))
        try:
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET))
    finally:
        os.close(home)


def socket_in(namespace_fd: int | None) -> socket.socket:
    """A non-blocking TCP socket that lives in the given namespace (or here, for None).

    A socket belongs to the namespace it was created in for its whole life, whichever thread uses it.
    """
    if namespace_fd is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        with inside(namespace_fd):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock
