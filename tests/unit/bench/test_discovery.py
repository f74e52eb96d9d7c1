"""The bench finds the processes to run and measure from the dev stack's ports, so a process
the stack gains (a points relay) is started and its CPU read without a change to the bench."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.ingest import points_kinds
from bench.services import kinds


@dataclass
class Ports:
    pg: int = 1
    broker: int = 2
    tasks: int = 3
    points: int = 4
    redeem: int = 5
    tasks_worker: int = 6
    points_worker: int = 7
    redeem_worker: int = 8
    prometheus: int = 9
    points_signals: int = 10
    points_relay: int = 11


@dataclass
class Stack:
    ports: Any


def test_every_service_process_with_a_port_but_the_signals_app() -> None:
    assert kinds(Stack(Ports())) == [
        ("tasks", "api"),
        ("tasks", "worker"),
        ("points", "api"),
        ("points", "worker"),
        ("points", "relay"),
        ("redeem", "api"),
        ("redeem", "worker"),
    ]


def test_ingest_runs_every_points_process_but_the_api_and_signals() -> None:
    assert points_kinds(Stack(Ports())) == ["worker", "relay"]
