"""Multivisor's API in-process: the stream's choice of events, the view's shapes, the form.

The hub's model is filled through a stand-in source's handle (the real supervisord runs
in tests/integration/test_multivisor_api.py, with the real multivisor-cli).
"""

from __future__ import annotations

import asyncio
import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from fleetwatch.config import Config, HubConfig, SupervisorSourceConfig
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import ActionSpec, Node, Process, Source
from fleetwatch.sources.base import ActionResult, Target
from fleetwatch.sources.base import Source as SourceRunner
from fleetwatch.types import Secret
from fleetwatch.web.app import create_app
from fleetwatch.web.multivisor import _StreamState, _View

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@dataclass(frozen=True)
class StandInConfig:
    name: str
    kind: str = "supervisor"


class StandIn(SourceRunner):
    """A stand-in for a supervisord source: it only holds its handle (no I/O)."""

    kind = "supervisor"

    def __init__(self, name: str, sink: SourceHandle) -> None:
        super().__init__(name, sink)
        self.handle = sink

    def actions(self) -> tuple[ActionSpec, ...]:
        return (ActionSpec(name="stop", title="Stop", targets=("process",)),)

    async def session(self) -> None:
        await asyncio.Event().wait()

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        return ActionResult(True)


def proc(name: str, state: str = "RUNNING", **kw: Any) -> Process:
    return Process(id=f"sv1:g:{name}", source="sv1", group="g", name=name, state=state, **kw)


@pytest.fixture
def hub() -> Hub:
    config = Config(path="t", hub=HubConfig(name="ACME"), sources={"sv1": StandInConfig("sv1")})  # type: ignore[dict-item]
    h = Hub(config, factories={"supervisor": lambda cfg, handle: StandIn(cfg.name, handle)})
    handle = handle_of(h)
    handle.status("online", version="4.3.0", info={"identification": "sv1", "pid": 7})
    handle.put(Node(id="sv1/box", source="sv1", name="box"))
    handle.put(proc("web", pid=10, started=100.0))
    handle.put(proc("idle", state="STOPPED"))
    h.flush()
    return h


def handle_of(hub: Hub) -> SourceHandle:
    runner = hub.runner("sv1")
    assert isinstance(runner, StandIn)
    return runner.handle


def test_a_state_change_is_process_changed_and_a_notification(hub: Hub) -> None:
    state = _StreamState(_View(hub))
    handle_of(hub).put(proc("web", state="STOPPED", stopped=200.0))
    events = state.changes(set(), {"sv1:g:web"})
    assert [e for e, _ in events] == ["process_changed", "notification"]
    assert events[0][1]["statename"] == "STOPPED"
    assert events[0][1]["running"] is False
    assert events[0][1]["host"] == "box"
    assert events[1][1]["message"] == "web on sv1 changed from RUNNING to STOPPED"
    assert events[1][1]["level"] == "INFO"
    assert state.changes(set(), {"sv1:g:web"}) == []  # told once


def test_only_now_or_description_changing_is_no_event(hub: Hub) -> None:
    state = _StreamState(_View(hub))
    handle_of(hub).put(proc("web", pid=10, started=100.0, description="pid 10, uptime 0:01:00"))
    assert state.changes({"sv1"}, {"sv1:g:web"}) == []


def test_a_new_process_is_supervisor_changed_not_a_key_the_client_lacks(hub: Hub) -> None:
    """multivisor-cli indexes its status by uid: a process_changed for a uid it never saw
    would raise KeyError in its event loop. Multivisor sends supervisor_changed then."""
    state = _StreamState(_View(hub))
    handle_of(hub).put(proc("newbie"))
    events = state.changes({"sv1"}, {"sv1:g:newbie"})
    assert [e for e, _ in events] == ["supervisor_changed"]
    assert set(events[0][1]["processes"]) == {"sv1:g:web", "sv1:g:idle", "sv1:g:newbie"}
    handle_of(hub).put(proc("newbie", state="STOPPING"))
    assert [e for e, _ in state.changes(set(), {"sv1:g:newbie"})] == [
        "process_changed",
        "notification",
    ]


def test_a_supervisor_going_offline_has_no_processes(hub: Hub) -> None:
    state = _StreamState(_View(hub))
    handle_of(hub).status("offline", error="connection refused")
    events = state.changes({"sv1"}, set())
    assert [e for e, _ in events] == ["supervisor_changed"]
    sup = events[0][1]
    assert sup["running"] is False
    assert sup["processes"] == {}
    assert sup["identification"] is None
    assert sup["pid"] is None


def test_process_payload_is_multivisors(hub: Hub) -> None:
    view = _View(hub)
    source = view.source("sv1")
    assert source is not None
    web = view.supervisor(source)["processes"]["sv1:g:web"]
    assert web["state"] == 20
    assert web["full_name"] == "g:web"
    assert web["start"] == 100
    assert web["stop"] == 0
    assert web["description"].startswith("pid 10, uptime ")
    idle = view.supervisor(source)["processes"]["sv1:g:idle"]
    assert (idle["state"], idle["running"], idle["pid"]) == (0, False, 0)


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, manage_hub=False), base_url="http://127.0.0.1") as c:
        yield c


def test_routes_under_the_main_port(client: TestClient) -> None:
    assert client.get("/multivisor/api/process/list").json() == ["sv1:g:idle", "sv1:g:web"]
    data = client.get("/multivisor/api/data").json()
    assert data["name"] == "ACME"
    assert data["supervisors"]["sv1"]["supervisor_version"] == "4.3.0"
    # not in fleetwatch's own OpenAPI schema
    assert not any("multivisor" in p for p in client.get("/api/openapi.json").json()["paths"])


def test_multipart_forms_are_refused_with_415(client: TestClient) -> None:
    r = client.post("/multivisor/api/process/stop", files={"uid": ("x", b"sv1:g:web")})
    assert r.status_code == 415
    assert "url-encoded" in r.json()["error"]


def test_every_uid_field_and_comma_item_counts(client: TestClient, hub: Hub) -> None:
    r = client.post("/multivisor/api/process/stop", content=b"uid=sv1:g:web&uid=+,idle,")
    assert (r.status_code, r.text) == (200, "OK")


def test_config_file_holds_no_credentials(hub: Hub) -> None:
    hub.config = dataclasses.replace(
        hub.config,
        sources={
            "sv1": SupervisorSourceConfig(
                name="sv1",
                url="http://127.0.0.1:9001",
                username="alice",
                password=Secret("s3cret"),
                agent_token=Secret("t0ken"),
            )
        },
    )
    hub.fleet.put(dataclasses.replace(_source(hub), url="http://127.0.0.1:9001"))
    hub.flush()
    with TestClient(create_app(hub, manage_hub=False), base_url="http://127.0.0.1") as c:
        content = c.get("/multivisor/api/config/file").json()["content"]
    assert content == "[global]\nname=ACME\n\n[supervisor:sv1]\nurl=http://127.0.0.1:9001\n"


def _source(hub: Hub) -> Source:
    s = hub.fleet.get("source", "sv1")
    assert isinstance(s, Source)
    return s


def test_after_a_resync_every_change_is_found(hub: Hub) -> None:
    """A stream client that fell behind compares everything with what it was told."""
    state = _StreamState(_View(hub))
    handle_of(hub).put(proc("web", state="STOPPED"))
    handle_of(hub).put(proc("idle", state="STARTING"))
    events = state.changes(*state.everything())
    changed = sorted(p["uid"] for e, p in events if e == "process_changed")
    assert changed == ["sv1:g:idle", "sv1:g:web"]
