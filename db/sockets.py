"""A look at a socket that does not wait: has the other end sent anything (data, or the
close of the connection)? Pools use it to find connections that died while idle.

Under gevent, `select.poll` is monkey-patched into a poll through the event loop,
which makes a look that cannot wait pay for a trip through the loop: the blocking
module's own is used instead, which is safe here because a zero timeout never blocks.
"""

from __future__ import annotations

import functools
import select
import sys


def has_input(fileno: int) -> bool:
    poller = _blocking_poll()()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@functools.cache
def _blocking_poll():
    """The blocking module's `poll`, looked up once (gevent's lookup is not free). If
    gevent patches `select` only after this, the one kept is still the blocking one."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll") if monkey is not None else select.poll
