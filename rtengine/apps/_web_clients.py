"""Who a web app client is, for the per-client cap: the real client behind trusted reverse proxies, IPv6 by /64.

* **Forwarded-for**, as hypercorn's and uvicorn's ``--forwarded-allow-ips``: only when the connection comes from a
  listed proxy address (an IP, a CIDR network, or ``*`` for any) are ``Forwarded: for=…`` (RFC 7239, preferred)
  or ``X-Forwarded-For`` read. Their entries are walked from the right (the proxy next to us appended the last
  one); the first address that is not itself a trusted proxy is the client — entries further left were written by
  the client and are never believed. A connection from any other address is keyed on that address, whatever
  headers it sends.
* **IPv6**: one host is given a whole /64 (and can pick any address in it), so an IPv6 client is keyed on its /64
  network (``2001:db8:1:2::/64``); an IPv4-mapped address is keyed as the IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["NO_PROXIES", "TrustedProxies", "client_key"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxy addresses whose forwarded-for headers are believed (see the module docstring)."""

    __slots__ = ("_any", "_networks")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        """``entries``: IPs, CIDR networks or ``*``; raises ``ValueError`` for anything else."""
        self._any = False
        self._networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if entry == "*":
                self._any = True
            elif entry:
                self._networks.append(ipaddress.ip_network(entry, strict=False))

    def __bool__(self) -> bool:
        return self._any or bool(self._networks)

    def trusts(self, address: str) -> bool:
        if self._any:
            return True
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self._networks)


#: No trusted proxy: every client is keyed on the address it connects from.
NO_PROXIES: Final = TrustedProxies()

#: How many forwarded entries are read at most (a longer chain is hostile or broken).
MAX_HOPS: Final = 32


def client_key(peer: str, headers: Mapping[str, str], trusted: TrustedProxies) -> str:
    """The per-client cap's key of a connection from ``peer`` with these (lower-cased) request headers."""
    client = peer
    if trusted and trusted.trusts(peer):
        chain = _forwarded_for(headers)[-MAX_HOPS:]
        for entry in reversed(chain):
            client = entry
            if not trusted.trusts(entry):
                break
    return _key(client)


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    forwarded = headers.get("forwarded")
    if forwarded is not None:
        found = []
        for element in forwarded.replace(";", ",").split(","):
            name, _, value = element.strip().partition("=")
            if name.strip().lower() == "for" and value:
                found.append(_node(value.strip().strip('"')))
        return found
    plain = headers.get("x-forwarded-for", "")
    return [entry.strip() for entry in plain.split(",") if entry.strip()]


def _node(value: str) -> str:
    """An RFC 7239 node without its port: ``[2001:db8::1]:4711`` → ``2001:db8::1``, ``192.0.2.1:80`` → ``192.0.2.1``."""
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _key(address: str) -> str:
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address if ip is None else str(ip)
