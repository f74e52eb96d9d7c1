"""Ports picked one after another for one stack never collide.

CI once gave the points worker and the redeem worker the same port: each pick bound port 0 and
closed it, and the kernel may hand the same ephemeral port out again. free_port remembers.
"""

from __future__ import annotations

import socket

from jifen.devtools.stack import free_port


def test_ports_picked_in_a_row_are_all_different_and_bindable() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
