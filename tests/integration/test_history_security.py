"""The history's routes behind login (issues 11 and 13): anonymous callers get 401, and a
restricted account sees only its sources' past — in the fleet at a moment, in raw events,
and 404 for another source's process or host — on a real hub over two supervisords."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for
from tests.integration.test_security import Fleet, fleet, hub_log  # noqa: F401 (fixtures)

pytestmark = pytest.mark.real


def test_a_restricted_account_sees_only_its_sources_past(fleet: Fleet) -> None:  # noqa: F811
    root = fleet.client("root")
    lid = fleet.client("lid")

    def recorded() -> bool:
        past = root.get("/api/history/fleet", params={"at": time.time()}).json()
        return {"lid1:web:web", "web2:web:web"} <= {p["id"] for p in past["processes"]}

    wait_for(recorded, 30, "both processes in the history")
    now = time.time()
    everything = root.get("/api/history/fleet", params={"at": now}).json()
    assert {s["id"] for s in everything["sources"]} == {"lid1", "web2"}
    mine = lid.get("/api/history/fleet", params={"at": now})
    assert mine.status_code == 200
    assert [p["id"] for p in mine.json()["processes"]] == ["lid1:web:web"]
    assert [s["id"] for s in mine.json()["sources"]] == ["lid1"]
    assert "web2" not in mine.text
    events = lid.get("/api/history/events", params={"since": 0, "limit": 10000})
    assert events.status_code == 200
    assert events.json()["events"]  # its own changes are there
    assert "web2" not in events.text
    assert "web2" in root.get("/api/history/events", params={"since": 0}).text
    assert lid.get("/api/history/processes/web2:web:web").status_code == 404
    assert lid.get("/api/history/nodes/web2/web2").status_code == 404
    assert lid.get("/api/history/processes/lid1:web:web").status_code == 200
    assert lid.get("/api/history").status_code == 200
    anonymous = fleet.new()
    for path in ("/api/history", "/api/history/fleet?at=1", "/api/history/events"):
        assert anonymous.get(path).status_code == 401, path
