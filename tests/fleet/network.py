"""Hosts for the fleet test: Linux network namespaces on one bridge, each with an address of its own.

A :class:`Network` makes a bridge in the test's own namespace (it holds the
``.1`` address, so the test and nginx can reach the hosts) and, for each host, a
namespace joined to the bridge by a veth pair. A host's link is cut by taking
its end of the pair on the bridge down, as unplugging its cable would: packets
to it are lost, not refused. Everything is removed when the network closes.

Making namespaces needs root (``CAP_NET_ADMIN``) and the ``ip`` command;
:func:`why_namespaces_cannot_be_made` says why not, for a skip reason.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass

#: The first host gets ``.10``, the next ``.11``…
FIRST_HOST = 10


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def why_namespaces_cannot_be_made() -> str | None:
    """None when this process can make namespaces, else the reason (for ``pytest.skip``)."""
    if shutil.which("ip") is None:
        return "the fleet test makes hosts with 'ip netns', and the ip command (iproute2) is missing"
    if os.geteuid() != 0:
        return "the fleet test makes network namespaces, which needs root (CAP_NET_ADMIN)"
    probe = f"fsprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as error:
        return f"network namespaces cannot be made here: {error.stderr.decode(errors='replace').strip()}"
    _ip("netns", "delete", probe)
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no address or route of this machine is in."""
    taken = subprocess.run(
        ["ip", "-o", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    )
    used = taken.stdout + subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for third in [os.getpid() % 250, *range(250)]:
        subnet = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if f"10.213.{third}." not in used:
            return subnet
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the fleet test")


@dataclass(frozen=True)
class Host:
    """One namespace: its name, its address, and the bridge end of its link (what a cut takes down)."""

    name: str
    namespace: str
    address: str
    link: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class Network:
    """A bridge with hosts on it; a context manager that removes them all on exit."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"{os.getpid() % 100000}"
        self.subnet = _free_subnet()
        self.bridge = f"fsb{self.tag}"
        self.gateway = str(self.subnet.network_address + 1)
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *_: object) -> None:
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True, timeout=10)
            subprocess.run(["ip", "link", "delete", host.link], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, timeout=10)

    def add_host(self, name: str) -> Host:
        """A new namespace on the bridge, with its own address and loopback up."""
        number = len(self.hosts)
        namespace = f"fs{self.tag}{name}"
        link, peer = f"fv{self.tag}{name}"[:15], f"fp{self.tag}{name}"[:15]
        address = str(self.subnet.network_address + FIRST_HOST + number)
        host = Host(name, namespace, address, link)
        self.hosts[name] = host
        _ip("netns", "add", namespace)
        _ip("link", "add", link, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", namespace)
        _ip("link", "set", link, "master", self.bridge)
        _ip("link", "set", link, "up")
        inside = ["-n", namespace]
        _ip(*inside, "link", "set", peer, "name", "eth0")
        _ip(*inside, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Unplug ``host``: its link goes down, and packets to it are dropped."""
        _ip("link", "set", host.link, "down")

    def mend(self, host: Host) -> None:
        _ip("link", "set", host.link, "up")
