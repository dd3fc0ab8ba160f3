"""The HTTP API and the WebSocket stream, in-process (starlette's TestClient).

The hub's model is filled directly through a fake source's handle. Changes that must
reach a live stream are made on the app's event loop (``client.portal.call``), as a
source would make them; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from fleetwatch.config import Config, HubConfig
from fleetwatch.errors import SourceError
from fleetwatch.hub import Hub, SourceHandle
from fleetwatch.model import ActionSpec, Delta, Job, Node, ParamSpec, Process
from fleetwatch.sources.base import ActionResult, Target
from fleetwatch.sources.base import Source as SourceRunner
from fleetwatch.web import stream as stream_module
from fleetwatch.web.app import create_app
from fleetwatch.web.stream import serve_stream

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2, which the project does not depend on (yet); the
    # TestClient works the same over httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1"
WS = "ws://127.0.0.1"
"""TestClient's default host, ``testserver``, is a name the Host check refuses."""

SPECS = (
    ActionSpec(name="start", title="Start", targets=("process", "group", "source")),
    ActionSpec(
        name="signal",
        title="Signal",
        targets=("process",),
        params=(ParamSpec(name="signal"), ParamSpec(name="count", type="integer", default=1)),
    ),
)


@dataclass(frozen=True)
class FakeConfig:
    name: str
    kind: str = "fake"


class FakeSource(SourceRunner):
    kind = "fake"

    def __init__(self, name: str, sink: SourceHandle) -> None:
        super().__init__(name, sink)
        self.handle = sink
        self.performed: list[tuple[Target, str, dict[str, Any]]] = []
        self.fail: Exception | None = None

    def actions(self) -> tuple[ActionSpec, ...]:
        return SPECS

    async def session(self) -> None:
        await asyncio.Event().wait()

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        self.performed.append((target, name, params))
        if self.fail is not None:
            raise self.fail
        return ActionResult(True, None, {"echo": params})


def make_hub(**hub: Any) -> Hub:
    config = Config(
        path="t",
        hub=HubConfig(name="ACME", **hub),
        sources={"f1": FakeConfig("f1")},  # type: ignore[dict-item]
    )
    h = Hub(config, factories={"fake": lambda cfg, handle: FakeSource(cfg.name, handle)})
    fill(handle_of(h))
    h.flush()
    return h


def handle_of(hub: Hub) -> SourceHandle:
    runner = hub.runner("f1")
    assert isinstance(runner, FakeSource)
    return runner.handle


def proc(name: str, state: str = "RUNNING", group: str = "g", **kw: Any) -> Process:
    return Process(id=f"f1:{group}:{name}", source="f1", group=group, name=name, state=state, **kw)


def fill(handle: SourceHandle) -> None:
    handle.status("online", version="1.0")
    handle.put(Node(id="f1/host.example", source="f1", name="host.example", labels={"a": "b"}))
    handle.put(proc("web", pid=10))
    handle.put(proc("api", pid=11))
    handle.put(proc("idle", state="STOPPED"))
    handle.put(proc("w0", group="workers", state="STARTING"))
    handle.put(Job(id="f1#1", source="f1", state="running"))


@pytest.fixture
def hub() -> Hub:
    return make_hub()


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, manage_hub=False), base_url=BASE) as c:
        yield c


# -- REST ------------------------------------------------------------------------------------------


def test_fleet_snapshot_shape(client: TestClient, hub: Hub) -> None:
    r = client.get("/api/fleet")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert list(data) == ["seq", "name", "epoch", "sources", "nodes", "processes", "jobs"]
    assert data["seq"] == hub.fleet.seq
    assert data["name"] == "ACME"
    (source,) = data["sources"]
    assert (source["id"], source["kind"], source["status"], source["version"]) == (
        "f1",
        "fake",
        "online",
        "1.0",
    )
    assert [a["name"] for a in source["actions"]] == ["start", "signal"]
    assert [n["id"] for n in data["nodes"]] == ["f1/host.example"]
    assert [p["id"] for p in data["processes"]] == [
        "f1:g:api",
        "f1:g:idle",
        "f1:g:web",
        "f1:workers:w0",
    ]
    web = data["processes"][2]
    assert {k: web[k] for k in ("source", "group", "name", "state", "pid")} == {
        "source": "f1",
        "group": "g",
        "name": "web",
        "state": "RUNNING",
        "pid": 10,
    }
    assert [j["id"] for j in data["jobs"]] == ["f1#1"]


def test_fleet_includes_pending_changes(client: TestClient, hub: Hub) -> None:
    handle_of(hub).put(proc("new"))
    data = client.get("/api/fleet").json()
    assert "f1:g:new" in [p["id"] for p in data["processes"]]
    assert data["seq"] == hub.fleet.seq


@pytest.mark.parametrize(
    ("q", "ids"),
    [
        ("", ["f1:g:api", "f1:g:idle", "f1:g:web", "f1:workers:w0"]),
        ("state:running", ["f1:g:api", "f1:g:web"]),
        ("state:running,starting", ["f1:g:api", "f1:g:web", "f1:workers:w0"]),
        ("-state:running", ["f1:g:idle", "f1:workers:w0"]),
        ("group:workers", ["f1:workers:w0"]),
        ("web", ["f1:g:web"]),
        ("state:fatal", []),
    ],
)
def test_process_list_filters(client: TestClient, hub: Hub, q: str, ids: list[str]) -> None:
    r = client.get("/api/processes", params={"q": q})
    assert r.status_code == 200
    assert [p["id"] for p in r.json()] == ids
    assert r.headers["x-fleet-seq"] == str(hub.fleet.seq)


def test_other_lists(client: TestClient) -> None:
    assert [s["id"] for s in client.get("/api/sources").json()] == ["f1"]
    assert [n["id"] for n in client.get("/api/nodes", params={"q": "labels.a:b"}).json()] == [
        "f1/host.example"
    ]
    assert client.get("/api/jobs", params={"q": "state:done"}).json() == []


def test_one_entity_by_id_even_with_a_slash(client: TestClient) -> None:
    r = client.get("/api/nodes/f1/host.example")
    assert r.status_code == 200
    assert r.json()["id"] == "f1/host.example"
    assert r.json()["labels"] == {"a": "b"}
    assert client.get("/api/processes/f1:g:web").json()["pid"] == 10
    assert client.get("/api/sources/f1").json()["status"] == "online"
    assert client.get("/api/jobs/f1%231").json()["state"] == "running"


@pytest.mark.parametrize(
    "path",
    ["/api/nodes/f1/nope", "/api/processes/f1:g:nope", "/api/sources/nope", "/api/jobs/f1%239"],
)
def test_unknown_ids_are_404_json(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error"}
    assert "no " in r.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/nope"), ("GET", "/api/"), ("POST", "/api/nope/deeper"), ("DELETE", "/api/x")],
)
def test_unknown_api_paths_are_404_json(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 404
    assert r.json() == {"error": f"no API endpoint {path}"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/fleet", "GET"),
        ("DELETE", "/api/processes/f1:g:web", "GET"),
        ("PATCH", "/api/processes/f1:g:web/log", "GET"),
        ("TRACE", "/api/health", "GET"),
        ("OPTIONS", "/api/sources", "GET"),
        ("GET", "/api/actions", "POST"),
        ("PUT", "/api/actions", "POST"),
    ],
)
def test_a_wrong_method_is_405_with_allow_issue8(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": f"{method} is not allowed on {path}: use {allow}"}


def test_the_openapi_names_what_is_sent_and_nothing_else_issue8(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    responses = {
        f"{method.upper()} {path}": set(op["responses"])
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }
    assert not [op for op, codes in responses.items() if "422" in codes]  # never sent
    assert not [op for op, codes in responses.items() if "421" not in codes]  # the Host check
    assert responses["POST /api/actions"] == {"200", "400", "403", "404", "409", "421"}
    assert responses["GET /api/processes/{id}/log"] == {"200", "400", "404", "409", "421", "502"}
    assert responses["GET /api/nodes/{id}"] == {"200", "404", "421"}
    assert responses["GET /api/notifications"] == {"200", "400", "421"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    refused = schema["components"]["schemas"]["RefusedOut"]
    assert set(refused["required"]) == {"error", "refused", "setting"}


def test_the_actions_body_says_which_params_each_action_needs_issue8(client: TestClient) -> None:
    """``signal`` without ``params`` is answered 400: the schema says it is invalid."""
    schema = client.get("/api/openapi.json").json()
    body = schema["paths"]["/api/actions"]["post"]["requestBody"]["content"]["application/json"]
    branches = {b["properties"]["name"].get("const", "*"): b for b in body["schema"]["anyOf"]}
    assert set(branches) == {"start", "signal", "*"}
    signal = branches["signal"]
    assert "params" in signal["required"]
    assert signal["properties"]["params"]["required"] == ["signal"]
    assert signal["properties"]["params"]["properties"] == {
        "signal": {"type": "string"},
        "count": {"type": "integer", "default": 1},
    }
    assert signal["properties"]["params"]["additionalProperties"] is False
    assert "params" not in branches["start"]["required"]
    assert branches["*"]["properties"]["name"]["not"] == {"enum": ["signal", "start"]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/fleet",
        "/api/health",
        "/api/processes",
        "/api/processes/f1:g:web",
    ],
)
def test_routes_read_the_model_on_the_loop_not_in_a_thread_pool(
    client: TestClient, hub: Hub, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ``def`` route runs in FastAPI's thread pool, beside the loop writing the model."""
    fill(handle_of(hub))
    on_loop: list[bool] = []
    real_get, real_snapshot = hub.fleet.get, hub.snapshot

    def running_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def get(*args: Any) -> Any:
        on_loop.append(running_loop())
        return real_get(*args)

    def snapshot() -> Any:
        on_loop.append(running_loop())
        return real_snapshot()

    monkeypatch.setattr(hub.fleet, "get", get)
    monkeypatch.setattr(hub, "snapshot", snapshot)
    monkeypatch.setattr(hub.fleet, "all", lambda kind: (on_loop.append(running_loop()), [])[1])
    assert client.get(path).status_code == 200
    assert on_loop
    assert all(on_loop), on_loop


def test_health_and_notifications(client: TestClient, hub: Hub) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["name"] == "ACME"
    assert health["seq"] == hub.fleet.seq
    assert health["sources"] == {"online": 1}
    assert client.get("/api/notifications").json() == []
    handle_of(hub).put(proc("web", state="FATAL", spawnerr="boom"))
    notes = client.get("/api/notifications").json()
    assert [(n["t"], n["severity"], n["subject"]["id"]) for n in notes] == [
        ("note", "error", "f1:g:web")
    ]
    assert client.get("/api/notifications", params={"limit": 0}).status_code == 400


def test_openapi_and_index(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "fleetwatch"
    assert "/api/fleet" in schema["paths"]
    assert not any("{rest" in path for path in schema["paths"])  # the catch-all is not an API
    r = client.get("/")
    assert r.status_code == 200
    assert "<html" in r.text


def test_log_of_an_unknown_or_unreadable_process(client: TestClient) -> None:
    r = client.get("/api/processes/f1:g:nope/log")
    assert r.status_code == 404
    assert "error" in r.json()
    r = client.get("/api/processes/f1:g:web/log")
    assert r.status_code == 409  # a fake source has no logs
    assert "error" in r.json()
    r = client.get("/api/processes/f1:g:web/log", params={"length": 0})
    assert r.status_code == 400


# -- actions ---------------------------------------------------------------------------------------


def post_action(client: TestClient, kind: str, id: str, name: str, **params: Any) -> Any:
    body = {"target": {"kind": kind, "id": id}, "name": name, "params": params}
    return client.post("/api/actions", json=body)


def test_a_good_action(client: TestClient, hub: Hub) -> None:
    r = post_action(client, "process", "f1:g:web", "signal", signal="HUP")
    assert r.status_code == 200
    assert r.json() == {
        "ok": True,
        "error": None,
        "detail": {"echo": {"signal": "HUP", "count": 1}},
    }
    runner = hub.runner("f1")
    assert isinstance(runner, FakeSource)
    assert runner.performed == [
        (Target("process", "f1:g:web"), "signal", {"signal": "HUP", "count": 1})
    ]
    assert post_action(client, "group", "f1:workers", "start").json()["ok"] is True


def test_a_failing_source_is_a_200_with_ok_false(client: TestClient, hub: Hub) -> None:
    runner = hub.runner("f1")
    assert isinstance(runner, FakeSource)
    runner.fail = SourceError("daemon said no")
    r = post_action(client, "source", "f1", "start")
    assert r.status_code == 200
    assert r.json() == {"ok": False, "error": "daemon said no", "detail": None}


@pytest.mark.parametrize(
    ("kind", "id", "name", "params", "status"),
    [
        ("process", "f1:g:nope", "start", {}, 404),
        ("source", "nope", "start", {}, 404),
        ("group", "f1:nope", "start", {}, 404),
        ("node", "f1/host.example", "start", {}, 409),
        ("process", "f1:g:web", "explode", {}, 409),
        ("process", "f1:g:web", "signal", {}, 400),
        ("process", "f1:g:web", "signal", {"signal": 9}, 400),
        ("process", "f1:g:web", "signal", {"signal": "HUP", "count": True}, 400),
        ("process", "f1:g:web", "signal", {"signal": "HUP", "extra": 1}, 400),
    ],
)
def test_refused_actions(
    client: TestClient, kind: str, id: str, name: str, params: dict[str, Any], status: int
) -> None:
    r = post_action(client, kind, id, name, **params)
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"ok", "error", "detail"}
    assert body["ok"] is False
    assert body["detail"] is None
    assert isinstance(body["error"], str)
    assert body["error"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe{}",  # not UTF-8 (issue 8)
        b"\x00",
        b"",
        b"[]",
        b'{"target": {"kind": "process"}, "name": "start"}',
        b'{"target": {"kind": "planet", "id": "x"}, "name": "start"}',
        b'{"target": {"kind": "process", "id": "f1:g:web"}, "name": "start", "extra": 1}',
        b'{"target": {"kind": "process", "id": "f1:g:web"}, "name": ""}',
        b'{"target": {"kind": "process", "id": "f1:g:web"}, "name": "start", "params": []}',
    ],
)
def test_malformed_action_requests_are_400_json(client: TestClient, content: bytes) -> None:
    r = client.post("/api/actions", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    assert body["ok"] is False
    assert body["detail"] is None
    assert isinstance(body["error"], str)


# -- the stream ------------------------------------------------------------------------------------


class Replica:
    """What a stream client keeps: entities by (kind, id), and the seq it is at."""

    PLURALS = {"source": "sources", "node": "nodes", "process": "processes", "job": "jobs"}

    def __init__(self) -> None:
        self.seq: int | None = None
        self.entities: dict[tuple[str, str], Any] = {}
        self.frames: list[dict[str, Any]] = []

    def take(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.frames.append(frame)
        if frame["t"] == "snapshot":
            self.seq = frame["seq"]
            self.entities = {
                (kind, e["id"]): e for kind, plural in self.PLURALS.items() for e in frame[plural]
            }
        elif frame["t"] == "delta":
            assert self.seq is not None, "a delta before any state"
            assert frame["seq"] - len(frame["changes"]) == self.seq, (
                f"gap or doubled delta: at {self.seq}, got {frame['seq']} "
                f"with {len(frame['changes'])} changes"
            )
            for c in frame["changes"]:
                if c["op"] == "put":
                    self.entities[(c["kind"], c["id"])] = c["value"]
                else:
                    self.entities.pop((c["kind"], c["id"]), None)
            self.seq = frame["seq"]
        return frame

    def as_fleet(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq}
        for kind, plural in self.PLURALS.items():
            out[plural] = sorted(
                (v for (k, _), v in self.entities.items() if k == kind), key=lambda e: e["id"]
            )
        return out


def same_state(replica: Replica, fleet: dict[str, Any]) -> bool:
    wanted = {k: v for k, v in fleet.items() if k not in ("name", "epoch")}
    return replica.as_fleet() == wanted


def on_loop(client: TestClient, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the app's event loop, as a source's task would."""
    assert client.portal is not None
    return client.portal.call(fn)


def change(hub: Hub, *processes: Process) -> Callable[[], None]:
    def run() -> None:
        for p in processes:
            handle_of(hub).put(p)

    return run


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wait long for a hello, so a client's ``{"since": N}`` never races the timer."""
    monkeypatch.setattr(stream_module, "HELLO_WAIT", 30.0)


def test_a_silent_new_client_gets_a_snapshot(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "HELLO_WAIT", 0.01)
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        frame = ws.receive_json()
        assert frame["t"] == "snapshot"
        assert frame["seq"] == hub.fleet.seq
        assert frame["name"] == "ACME"
        fleet = client.get("/api/fleet").json()
        assert frame == {"t": "snapshot", **fleet}


@pytest.mark.usefixtures("patient")
def test_deltas_follow_the_snapshot_gap_free(client: TestClient, hub: Hub) -> None:
    replica = Replica()
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        ws.send_json({})
        assert replica.take(ws.receive_json())["t"] == "snapshot"
        on_loop(client, change(hub, proc("web", pid=20), proc("new")))
        frame = replica.take(ws.receive_json())
        assert frame["t"] == "delta"
        assert [c["id"] for c in frame["changes"]] == ["f1:g:web", "f1:g:new"]
        for i in range(5):
            on_loop(client, change(hub, proc("api", pid=100 + i)))
            assert replica.take(ws.receive_json())["t"] == "delta"
        on_loop(client, lambda: handle_of(hub).delete("process", "f1:g:idle"))
        frame = replica.take(ws.receive_json())
        assert frame["changes"] == [
            {"op": "del", "kind": "process", "id": "f1:g:idle", "value": None}
        ]
        assert same_state(replica, client.get("/api/fleet").json())


@pytest.mark.usefixtures("patient")
def test_notes_are_streamed(client: TestClient, hub: Hub) -> None:
    replica = Replica()
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        ws.send_json({})
        replica.take(ws.receive_json())
        on_loop(client, change(hub, proc("web", state="EXITED", exitstatus=2)))
        frames = [replica.take(ws.receive_json()), replica.take(ws.receive_json())]
        assert sorted(f["t"] for f in frames) == ["delta", "note"]
        note = next(f for f in frames if f["t"] == "note")
        assert (note["severity"], note["subject"], note["source"]) == (
            "warning",
            {"kind": "process", "id": "f1:g:web"},
            "f1",
        )


def history(hub: Hub, n: int) -> list[Delta]:
    """Commit ``n`` deltas (before any stream connects)."""
    out = []
    for i in range(n):
        handle_of(hub).put(proc("api", pid=1000 + i))
        if i % 2:
            handle_of(hub).put(proc("web", pid=2000 + i))
        d = hub.flush()
        assert d is not None
        out.append(d)
    return out


def resume(client: TestClient, hub: Hub, ws: Any, replica: Replica, deltas: list[Delta]) -> None:
    """Read exactly the missed deltas, then check the stream goes on with nothing doubled."""
    for d in deltas:
        frame = replica.take(ws.receive_json())
        assert frame == orjson.loads(d.frame())
    on_loop(client, change(hub, proc("idle", state="RUNNING", pid=7)))
    frame = replica.take(ws.receive_json())
    assert frame["t"] == "delta"
    assert [c["id"] for c in frame["changes"]] == ["f1:g:idle"]
    assert all(f["t"] == "delta" for f in replica.frames)
    assert same_state(replica, client.get("/api/fleet").json())


def test_resume_with_since_in_the_url(client: TestClient, hub: Hub) -> None:
    base = client.get("/api/fleet").json()
    missed = history(hub, 4)
    replica = Replica()
    replica.take({"t": "snapshot", **base})
    replica.frames.clear()
    with client.websocket_connect(f"{WS}/api/stream?since={base['seq']}") as ws:
        resume(client, hub, ws, replica, missed)


@pytest.mark.usefixtures("patient")
def test_resume_with_since_in_a_message(client: TestClient, hub: Hub) -> None:
    first = history(hub, 2)
    base = client.get("/api/fleet").json()
    assert base["seq"] == first[-1].seq
    missed = history(hub, 3)
    replica = Replica()
    replica.take({"t": "snapshot", **base})
    replica.frames.clear()
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        ws.send_json({"since": base["seq"]})
        resume(client, hub, ws, replica, missed)


@pytest.mark.usefixtures("patient")
def test_resume_when_nothing_was_missed(client: TestClient, hub: Hub) -> None:
    replica = Replica()
    base = client.get("/api/fleet").json()
    replica.take({"t": "snapshot", **base})
    replica.frames.clear()
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        ws.send_json({"since": base["seq"]})
        resume(client, hub, ws, replica, [])


def test_resume_with_this_hubs_epoch(client: TestClient, hub: Hub) -> None:
    base = client.get("/api/fleet").json()
    missed = history(hub, 3)
    replica = Replica()
    replica.take({"t": "snapshot", **base})
    replica.frames.clear()
    url = f"{WS}/api/stream?since={base['seq']}&epoch={base['epoch']}"
    with client.websocket_connect(url) as ws:
        resume(client, hub, ws, replica, missed)


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize("in_url", [True, False])
def test_a_seq_from_another_hub_epoch_gets_a_snapshot(
    client: TestClient, hub: Hub, in_url: bool
) -> None:
    """Guards the page against a restarted hub: its seq counts from 0 again, so an old
    seq would name deltas of another history."""
    history(hub, 2)
    base = client.get("/api/fleet").json()
    history(hub, 2)
    assert hub.fleet.deltas_since(base["seq"])  # the ring could serve this seq...
    url = f"{WS}/api/stream"
    if in_url:
        url += f"?since={base['seq']}&epoch=0123456789abcdef"
    with client.websocket_connect(url) as ws:
        if not in_url:
            ws.send_json({"since": base["seq"], "epoch": "0123456789abcdef"})
        frame = ws.receive_json()
        assert frame["t"] == "snapshot"  # ...but not for a client of another epoch
        assert frame["epoch"] == hub.fleet.epoch == base["epoch"]


@pytest.mark.parametrize("since", ["0", "3", "999999", "-1", "abc"])
def test_a_since_the_ring_cannot_serve_gets_a_snapshot(since: str) -> None:
    hub = make_hub(delta_ring=2)
    history(hub, 5)
    with (
        TestClient(create_app(hub, manage_hub=False), base_url=BASE) as client,
        client.websocket_connect(f"{WS}/api/stream?since={since}") as ws,
    ):
        frame = ws.receive_json()
        assert frame["t"] == "snapshot"
        assert frame["seq"] == hub.fleet.seq


@pytest.mark.usefixtures("patient")
def test_ping_pong(client: TestClient) -> None:
    with client.websocket_connect(f"{WS}/api/stream") as ws:
        ws.send_json({})
        assert ws.receive_json()["t"] == "snapshot"
        ws.send_json({"ping": 7})
        assert ws.receive_json() == {"t": "pong", "ping": 7}
        ws.send_text("not json")  # ignored
        ws.send_json({"ping": "x"})
        assert ws.receive_json() == {"t": "pong", "ping": "x"}


@pytest.mark.usefixtures("patient")
def test_a_slow_client_gets_a_fresh_snapshot() -> None:
    hub = make_hub()
    hub.max_backlog = 2
    replica = Replica()
    with (
        TestClient(create_app(hub, manage_hub=False), base_url=BASE) as client,
        client.websocket_connect(f"{WS}/api/stream") as ws,
    ):
        ws.send_json({})
        replica.take(ws.receive_json())

        def burst() -> None:  # more deltas than the backlog, before the stream can send
            for i in range(5):
                handle_of(hub).put(proc("api", pid=500 + i))
                hub.flush()

        on_loop(client, burst)
        frame = replica.take(ws.receive_json())
        assert frame["t"] == "snapshot"
        assert frame["seq"] == hub.fleet.seq
        on_loop(client, change(hub, proc("web", pid=1)))
        assert replica.take(ws.receive_json())["t"] == "delta"
        assert same_state(replica, client.get("/api/fleet").json())


# -- the stream against a socket whose sends take time ---------------------------------------------


class SlowSocket:
    """A WebSocket stand-in whose every send yields to the loop, as a real socket's does."""

    def __init__(self, query: dict[str, str], during_send: Callable[[int], None]) -> None:
        self.query_params = query
        self.during_send = during_send
        self.frames: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.arrived = asyncio.Event()

    async def accept(self) -> None:
        pass

    async def send_text(self, text: str) -> None:
        self.frames.append(orjson.loads(text))
        self.during_send(len(self.frames))
        self.arrived.set()
        await asyncio.sleep(0)

    async def receive(self) -> dict[str, Any]:
        item = await self.inbox.get()
        if item is None:
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "websocket.receive", "text": item}


@pytest.mark.anyio
async def test_a_delta_committed_while_the_missed_ones_are_sent_is_not_lost() -> None:
    hub = make_hub()
    since = hub.fleet.seq
    missed = history(hub, 3)
    late: list[Delta] = []

    def during_send(count: int) -> None:
        if count == 1:  # e.g. a GET /api/fleet commits a source's change meanwhile
            handle_of(hub).put(proc("idle", state="RUNNING", pid=3))
            hub.snapshot()
            late.append(hub.fleet.deltas_since(missed[-1].seq)[0])  # type: ignore[index]

    ws = SlowSocket({"since": str(since)}, during_send)
    task = asyncio.create_task(serve_stream(ws, hub))  # type: ignore[arg-type]
    try:
        with anyio.fail_after(5):
            while len(ws.frames) < 4:
                ws.arrived.clear()
                await ws.arrived.wait()
    finally:
        ws.inbox.put_nowait(None)
        with anyio.fail_after(5):
            await task
    assert [f["seq"] for f in ws.frames] == [d.seq for d in [*missed, *late]]
    replica = Replica()
    replica.seq = since
    for f in ws.frames:
        replica.take(f)
    assert replica.seq == hub.fleet.seq
    assert hub.subscribers == 0
    await hub.stop()
