"""``/api/history...`` in-process (starlette's TestClient) over a real SQLite history.

Changes are made on the app's loop (``client.portal.call``), as a source makes them, and
``History.flush`` waits until the writer has written them: nothing sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwatch.config import Config, HistoryConfig, HubConfig
from fleetwatch.hub import Hub
from fleetwatch.model import Process
from fleetwatch.publishers.history import History
from fleetwatch.web.app import create_app
from tests.unit.test_web import BASE, FakeConfig, FakeSource, TestClient, fill, handle_of


def make_hub(history: HistoryConfig) -> Hub:
    config = Config(
        path="t",
        hub=HubConfig(name="ACME"),
        sources={"f1": FakeConfig("f1")},  # type: ignore[dict-item]
        history=history,
    )
    hub = Hub(config, factories={"fake": lambda cfg, handle: FakeSource(cfg.name, handle)})
    fill(handle_of(hub))
    hub.flush()
    return hub


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return make_hub(HistoryConfig(url=str(tmp_path / "t.history.db")))


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, manage_hub=False), base_url=BASE) as c:
        yield c


def history_of(client: TestClient) -> History:
    history = client.app.state.history  # type: ignore[attr-defined]
    assert isinstance(history, History)
    return history


def change(client: TestClient, hub: Hub, state: str) -> float:
    """Put f1:g:web in ``state`` on the app's loop; return once it is written."""
    before = time.time()

    def put() -> None:
        handle_of(hub).put(
            Process(id="f1:g:web", source="f1", group="g", name="web", state=state, pid=12)
        )

    client.portal.call(put)  # type: ignore[arg-type]
    client.portal.call(history_of(client).flush)
    return before


def test_bounds(client: TestClient) -> None:
    client.portal.call(history_of(client).flush)
    r = client.get("/api/history")
    assert r.status_code == 200
    data = r.json()
    assert list(data) == ["enabled", "backend", "first", "last", "events", "snapshots"]
    assert data["enabled"] is True
    assert data["backend"] == "sqlite"
    assert data["snapshots"] == 1
    assert data["first"] <= time.time()


def test_fleet_at(client: TestClient, hub: Hub) -> None:
    before = change(client, hub, "STOPPED")
    live = client.get("/api/fleet").json()
    r = client.get("/api/history/fleet", params={"at": time.time() + 1})
    assert r.status_code == 200
    past = r.json()
    assert list(past) == ["seq", "name", "epoch", "at", "sources", "nodes", "processes", "jobs"]
    assert {k: v for k, v in past.items() if k != "at"} == live
    r = client.get("/api/history/fleet", params={"at": before - 0.000001})
    old = {p["id"]: p["state"] for p in r.json()["processes"]}
    assert old["f1:g:web"] == "RUNNING"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before + 5))
    r = client.get("/api/history/fleet", params={"at": iso})
    assert {p["id"]: p["state"] for p in r.json()["processes"]}["f1:g:web"] == "STOPPED"


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({}, 400, "at"),
        ({"at": "3 a.m."}, 400, "pattern"),
        ({"at": "nan"}, 400, "pattern"),
        ({"at": "1000"}, 404, "nothing is recorded that early"),
        ({"at": "1970-01-01T00:16:40"}, 404, "nothing is recorded that early"),
    ],
)
def test_fleet_at_errors(
    client: TestClient, params: dict[str, str], status: int, text: str
) -> None:
    r = client.get("/api/history/fleet", params=params)
    assert r.status_code == status
    assert text in r.json()["error"]


def test_process_history(client: TestClient, hub: Hub) -> None:
    since = change(client, hub, "STOPPING")
    change(client, hub, "STOPPED")
    r = client.get("/api/history/processes/f1:g:web", params={"since": since, "until": time.time()})
    assert r.status_code == 200
    data = r.json()
    assert list(data) == ["id", "since", "until", "initial", "changes"]
    assert data["initial"]["state"] == "RUNNING"
    assert [c["state"] for c in data["changes"]] == ["STOPPING", "STOPPED"]
    assert list(data["changes"][0]) == [
        "ts",
        "state",
        "pid",
        "exitstatus",
        "description",
        "spawnerr",
    ]
    r = client.get("/api/history/processes/f1:g:web", params={"since": "2", "until": "1"})
    assert r.status_code == 200
    assert r.json()["changes"] == []  # an empty range


def test_node_history(client: TestClient) -> None:
    client.portal.call(history_of(client).flush)
    r = client.get("/api/history/nodes/f1/host.example")
    assert r.status_code == 200
    data = r.json()
    assert list(data) == ["id", "since", "until", "initial", "changes", "jobs", "totals"]
    assert data["initial"] is None  # a day ago: before the first record
    assert data["totals"] == {"done": 0, "failed": 0, "local": 0}
    assert data["until"] - data["since"] == 86400
    first = client.get("/api/history").json()["first"]
    data = client.get("/api/history/nodes/f1/host.example", params={"since": first}).json()
    assert data["initial"]["name"] == "host.example"


def test_events(client: TestClient, hub: Hub) -> None:
    since = change(client, hub, "STOPPED")
    r = client.get("/api/history/events", params={"since": since, "kind": "process"})
    assert r.status_code == 200
    data = r.json()
    assert data["more"] is False
    (event,) = data["events"]
    assert list(event) == ["ts", "seq", "op", "kind", "id", "value"]
    assert (event["op"], event["id"], event["value"]["state"]) == ("put", "f1:g:web", "STOPPED")
    assert event["seq"] == hub.fleet.seq
    assert client.get("/api/history/events", params={"limit": 10001}).status_code == 400
    change(client, hub, "STARTING")
    r = client.get("/api/history/events", params={"since": 0, "id": "f1:g:w*", "limit": 1})
    assert [e["value"]["state"] for e in r.json()["events"]] == ["STOPPED"]
    assert r.json()["more"] is True  # STARTING is next
    r = client.get("/api/history/events", params={"since": 0, "id": "f1:g:x*"})
    assert r.json() == {"events": [], "more": False}


def test_actions_and_notes_are_events(client: TestClient, hub: Hub) -> None:
    since = time.time()
    r = client.post(
        "/api/actions",
        json={"target": {"kind": "process", "id": "f1:g:web"}, "name": "start"},
    )
    assert r.json()["ok"] is True
    change(client, hub, "FATAL")  # a process that fails: a notification
    r = client.get("/api/history/events", params={"since": since, "kind": "action"})
    (action,) = r.json()["events"]
    assert action["id"] == "f1:g:web"
    assert action["value"]["name"] == "start"
    assert action["value"]["user"] == "anonymous"
    assert action["value"]["ok"] is True
    r = client.get("/api/history/events", params={"since": since, "kind": "note"})
    assert [e["id"] for e in r.json()["events"]] == ["f1:g:web"]


def test_history_off(tmp_path: Path) -> None:
    hub = make_hub(HistoryConfig(enabled=False))
    with TestClient(create_app(hub, manage_hub=False), base_url=BASE) as client:
        for path in (
            "/api/history",
            "/api/history/fleet?at=1",
            "/api/history/processes/x",
            "/api/history/nodes/a/b",
            "/api/history/events",
        ):
            r = client.get(path)
            assert r.status_code == 404, path
            assert r.json() == {"error": "history is off"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1796249950.5", 1796249950.5),
        ("2026-12-02T03:12:00Z", 1796181120.0),
        ("2026-12-02T03:12:00", 1796181120.0),  # no zone: UTC
        ("2026-12-02 04:12+01:00", 1796181120.0),
        ("2026-12-02", 1796169600.0),
        ("2026-02-30T00:00:00Z", 1772409600.0),  # counts on: March 2
        ("999999999999", 1e11),  # clamped
    ],
)
def test_parse_time(text: str, seconds: float) -> None:
    from fleetwatch.web.history import parse_time

    assert parse_time(text, "at") == seconds
