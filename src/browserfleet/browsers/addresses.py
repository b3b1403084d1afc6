"""Which destinations a session's traffic may reach: one table of refused networks, the host's own
addresses, and the operator's allow-list (`BROWSERFLEET_EGRESS_ALLOW`), as an `EgressRules` object.

Pure but for reading the host's interface addresses (psutil). `EgressRules.check(address, port, name)`
is the one decision: the egress proxy asks it for every resolved address of every connection, and a
future upstream proxy's address goes through the same call.

The refused networks are listed explicitly rather than taken from `ipaddress`'s `is_private`/`is_global`,
whose definitions changed across Python versions.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOST_REFRESH = 30.0  # seconds between enumerations of the host's interface addresses


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in rows)


# What a session may not reach unless the allow-list names it. First match gives the reason.
REFUSED = _table(
    (
        ("0.0.0.0/8", "an unspecified address"),  # 0.0.0.0 reaches this host's loopback on Linux
        ("10.0.0.0/8", "a private network address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),  # cloud metadata: 169.254.169.254
        ("172.16.0.0/12", "a private network address"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved address"),  # the retired 6to4 relay anycast
        ("192.168.0.0/16", "a private network address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        # (::ffff:0:0/96, 64:ff9b::/96 and 2002::/16 embed an IPv4 address, which is checked instead.)
        ("::/96", "an IPv4-compatible address"),
        ("::ffff:0:0:0/96", "an IPv4-translated address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:10::/28", "a reserved address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment-routing address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        # Everything else outside global unicast (2000::/3) is reserved.
        ("::/3", "a reserved address"),
        ("4000::/2", "a reserved address"),
        ("8000::/1", "a reserved address"),
    )
)
# The same table as integers, by IP version: a check costs a few microseconds, not ipaddress's tens.
_REFUSED_BY_VERSION = {
    version: tuple(
        (int(net.network_address), int(net.netmask), why) for net, why in REFUSED if net.version == version
    )
    for version in (4, 6)
}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
THIS_HOST = "an address of this host"


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries and leads to: IPv4-mapped, NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def table_reason(address: IPAddress) -> str | None:
    """Why the table refuses an address (None: it does not), embedded IPv4 forms included."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            why = table_reason(embedded[1])
            return None if why is None else f"{why} ({embedded[0]})"
    value = int(address)
    for network, mask, why in _REFUSED_BY_VERSION[address.version]:
        if value & mask == network:
            return why
    return None


def parse_address(text: str) -> IPAddress:
    """An IP address, brackets and any zone id (`%eth0`, `%25eth0`) dropped."""
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


def _interface_addresses() -> frozenset[IPAddress]:
    found: set[IPAddress] = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(parse_address(entry.address))
                except ValueError:
                    continue
    return frozenset(found)


class HostAddresses:
    """The addresses of this host's interfaces (in the server's network namespace), re-read every
    `HOST_REFRESH` seconds when asked, so an address added later is refused too."""

    def __init__(self, read: Callable[[], frozenset[IPAddress]] = _interface_addresses) -> None:
        self._read = read
        self._addresses = read()
        self._at = time.monotonic()

    def __contains__(self, address: object) -> bool:
        if time.monotonic() - self._at > HOST_REFRESH:
            self._addresses = self._read()
            self._at = time.monotonic()
        return address in self._addresses


# -- the allow-list ------------------------------------------------------------------------------

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


def normal_name(name: str) -> str:
    """A host name as compared: lower case, without a trailing dot."""
    return name.lower().removesuffix(".")


def _valid_name(name: str) -> bool:
    labels = name.split(".")
    # A numeric last label makes an IPv4 address of the name (2130706433, 0x7f.1): not a name.
    return (
        len(name) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not _NUMERIC_LABEL.fullmatch(labels[-1])
    )


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a port (1-65535)")
    return int(text)


@dataclass(frozen=True)
class AllowList:
    networks: tuple[IPNetwork, ...] = ()  # every port
    endpoints: frozenset[tuple[IPAddress, int]] = frozenset()
    names: frozenset[tuple[str, int]] = frozenset()  # (normal name, port)

    def admits(self, address: IPAddress, port: int, name: str | None) -> bool:
        if name is not None and (normal_name(name), port) in self.names:
            return True
        forms = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)  # the same destination
        return any(
            (form, port) in self.endpoints
            or any(
                version == form.version and int(form) & mask == network
                for version, network, mask in self._networks
            )
            for form in forms
        )

    @functools.cached_property
    def _networks(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((net.version, int(net.network_address), int(net.netmask)) for net in self.networks)


def parse_allow_list(text: str, setting: str = "BROWSERFLEET_EGRESS_ALLOW") -> AllowList:
    """Comma-separated entries: a CIDR or an address (every port), `address:port`, `[v6]:port` or
    `name:port`. A bad entry raises ValueError naming it."""
    networks: list[IPNetwork] = []
    endpoints: set[tuple[IPAddress, int]] = set()
    names: set[tuple[str, int]] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            if "%" in entry:
                raise ValueError("zone ids (%eth0) are not supported")
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry))
                continue
            try:
                address = parse_address(entry)
            except ValueError:
                address = None
            if address is not None and (entry.startswith("[") == entry.endswith("]")):
                networks.append(ipaddress.ip_network(address))
                continue
            host, colon, port_text = entry.rpartition(":")
            if not colon or not host:
                raise ValueError("expected a CIDR, an address, address:port, [IPv6]:port or name:port")
            port = _port(port_text)
            if host.startswith("["):
                if not host.endswith("]"):
                    raise ValueError("unbalanced brackets")
                endpoints.add((ipaddress.IPv6Address(host[1:-1]), port))
            elif ":" in host:
                raise ValueError("an IPv6 address with a port goes in brackets: [::1]:9000")
            else:
                try:
                    endpoints.add((ipaddress.IPv4Address(host), port))
                except ValueError:
                    if not _valid_name(normal_name(host)):
                        raise ValueError(f"{host!r} is neither an IP address nor a host name") from None
                    names.add((normal_name(host), port))
        except ValueError as exc:
            raise ValueError(f"{setting} entry {entry!r}: {exc}") from None
    return AllowList(tuple(networks), frozenset(endpoints), frozenset(names))


def parse_hosts(text: str, setting: str = "BROWSERFLEET_EGRESS_HOSTS") -> dict[str, tuple[IPAddress, ...]]:
    """`name=address,...`: names the egress proxy resolves to fixed addresses instead of asking the
    system resolver (a testing aid); a name given again gets more addresses, in order."""
    hosts: dict[str, tuple[IPAddress, ...]] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, equals, value = entry.partition("=")
        name = normal_name(name.strip())
        try:
            if not equals or not _valid_name(name):
                raise ValueError("expected name=address")
            hosts[name] = (*hosts.get(name, ()), parse_address(value.strip()))
        except ValueError as exc:
            raise ValueError(f"{setting} entry {entry!r}: {exc}") from None
    return hosts


# -- the rules -------------------------------------------------------------------------------------


LOOPBACK = (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128"))


@dataclass
class EgressRules:
    """The decision for one destination: `check` returns None when it may be reached, else why not."""

    allow: AllowList = field(default_factory=AllowList)
    hosts: dict[str, tuple[IPAddress, ...]] = field(default_factory=dict)  # fixed resolutions (testing aid)
    host_addresses: HostAddresses = field(default_factory=HostAddresses)

    @classmethod
    def from_settings(cls, allow: str, allow_loopback: bool, hosts: str = "") -> EgressRules:
        allowed = parse_allow_list(allow)
        if allow_loopback:
            allowed = AllowList((*allowed.networks, *LOOPBACK), allowed.endpoints, allowed.names)
        return cls(allowed, parse_hosts(hosts))

    def check(self, address: IPAddress | str, port: int, name: str | None = None) -> str | None:
        """Whether `address:port` (reached as `name`, when a name was asked for) may be connected to."""
        if isinstance(address, str):
            address = parse_address(address)
        if self.allow.admits(address, port, name):
            return None
        why = table_reason(address)
        if why is not None:
            return why
        embedded = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if address in self.host_addresses or (embedded is not None and embedded[1] in self.host_addresses):
            return THIS_HOST
        return None
