"""A real Kafka client from outside the project reads what Jifen writes: after a typical
journey (a job published, completed, verified, credited, redeemed) on a stack of its own, kcat
(Debian) reads every topic from the beginning. Each event record carries the CloudEvents Kafka
binding's structured-mode header ``content-type: application/cloudevents+json`` and its value
validates against schemas/ with a Draft 2020-12 validator; a dead letter says it is plain JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from jifen.devtools.devstack import DevStack
from jifen.kernel import topics
from jifen.kernel.settings import REPO_ROOT
from tests.e2e import test_typical_journey as journey
from tests.helpers import Api, isolated_stack

pytestmark = pytest.mark.e2e
SCHEMAS = REPO_ROOT / "schemas"
# the topics a typical journey writes to (adjustments and dead letters may stay empty)
JOURNEY = [topics.TASKS_JOBS, topics.TASKS_COMPLETIONS, topics.POINTS_LEDGER,
           topics.REDEEM_REDEMPTIONS]  # fmt: skip


@pytest.fixture(scope="module")
def kstack() -> Iterator[DevStack]:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: `make deps` installs it (Debian package kcat)")
    with isolated_stack("jifen-kcat-") as stack:
        if stack.broker.kind == "tansu":
            pytest.skip("kcat cannot talk to Tansu (ApiVersionRequest failed): JIFEN_BROKER=kafka")
        stack.start_services()
        yield stack


@pytest.fixture
async def kapis(kstack: DevStack) -> AsyncIterator[dict[str, Api]]:
    clients = {s: Api(kstack, s) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()


def kcat(bootstrap: str, *args: str) -> str:
    done = subprocess.run(
        ["kcat", "-b", bootstrap, "-q", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    out = kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def validators() -> tuple[Draft202012Validator, dict[str, Draft202012Validator]]:
    envelope = json.loads((SCHEMAS / "envelope.schema.json").read_text())
    Draft202012Validator.check_schema(envelope)
    data = {}
    for path in sorted((SCHEMAS / "events").glob("*.schema.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        data[path.name.removesuffix(".schema.json")] = Draft202012Validator(schema)
    return Draft202012Validator(envelope), data


def headers_of(record: dict[str, Any]) -> dict[str, str]:
    flat = record.get("headers") or []
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def test_kcat_reads_every_topic_cloudevents_structured(
    kstack: DevStack, kapis: dict[str, Api]
) -> None:
    await journey.test_one_completion_flows_into_the_ledger_and_is_spent(kapis)
    bootstrap = kstack.broker.bootstrap
    listed = json.loads(kcat(bootstrap, "-L", "-J"))
    assert {t["topic"] for t in listed["topics"]} >= set(topics.with_dead_letters())
    envelope, data = validators()
    seen: dict[str, int] = {}
    for topic in topics.with_dead_letters():
        records = read_topic(bootstrap, topic)
        seen[topic] = len(records)
        for r in records:
            where = f"{topic}[{r['partition']}]@{r['offset']}"
            if topic.endswith(".dlq"):
                assert headers_of(r).get("content-type") == "application/json", where
                continue
            assert headers_of(r).get("content-type") == "application/cloudevents+json", where
            event = json.loads(r["payload"])
            envelope.validate(event)
            data[event["type"]].validate(event["data"])
            assert event["dataschema"] == f"urn:jifen:schema:{event['type']}", where
            assert r["key"], f"{where}: no key (a key keeps one account's events in order)"
    assert all(seen[t] > 0 for t in JOURNEY), seen
