"""Hosts on one machine: each a Linux network namespace (`ip netns`) with its own
network link to the data host, which is this (root) namespace. The data services
(Postgres, Redis, the fake OpenAI server) listen on 127.0.0.1 here, so a forwarder
(services.TcpProxy) on the data address carries each to them; a host reaches only
that address. `cut(host)` takes a host's link down, as a pulled cable or a dead
switch port does: its open connections neither close nor answer.

Needs root and iproute2's `ip netns`; without them the tests fail, saying so."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str  # this host's address, as the data host and the tests reach it
    link: str  # its link's end in the root namespace (down: the host is cut off)


class Network:
    """Namespaces `cv<tag>-<name>`, each with a veth pair to the root namespace
    (10.N.i.2 inside, 10.N.i.1 outside) and a route to the data address 10.N.0.1,
    which is put on the root namespace's loopback. `close()` removes all of it."""

    def __init__(self, names: list[str]) -> None:
        self.tag = f"{random.randrange(16**4):04x}"
        self.subnet = 100 + random.randrange(150)
        self.data_address = f"10.{self.subnet}.0.1"
        self.hosts: dict[str, Host] = {}
        self._names = names

    def __enter__(self) -> Network:
        try:
            _ip("addr", "add", f"{self.data_address}/32", "dev", "lo")
            for index, name in enumerate(self._names, start=1):
                self._add_host(index, name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _add_host(self, index: int, name: str) -> None:
        netns, link, inside = f"cv{self.tag}-{name}", f"cv{self.tag}h{index}", f"cv{self.tag}i{index}"
        outside_address, address = f"10.{self.subnet}.{index}.1", f"10.{self.subnet}.{index}.2"
        _ip("netns", "add", netns)
        self.hosts[name] = Host(name, netns, address, link)
        _ip("link", "add", link, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("addr", "add", f"{outside_address}/24", "dev", link)
        _ip("link", "set", link, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        _ip("-n", netns, "route", "add", f"{self.data_address}/32", "via", outside_address)

    def cut(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str, *, check: bool = True) -> None:
        _ip("link", "set", self.hosts[name].link, "up", check=check)

    def close(self) -> None:
        """Remove every namespace, link and address made, whatever failed before."""
        for host in self.hosts.values():
            _ip("link", "del", host.link, check=False)  # takes its peer in the namespace along
            _ip("netns", "del", host.netns, check=False)
        self.hosts.clear()
        _ip("addr", "del", f"{self.data_address}/32", "dev", "lo", check=False)


def _ip(*args: str, check: bool = True) -> None:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.fail("the cross-host tests need iproute2's `ip` (apt-get install -y iproute2) and root")
    if check and done.returncode != 0:
        pytest.fail(f"`ip {' '.join(args)}` failed (the cross-host tests need root): {done.stderr.strip()}")
