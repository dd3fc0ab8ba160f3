"""The API answers as its OpenAPI description says: schemathesis over every operation
(issue 8, item 7), with every check, against a real hub watching a real supervisord.

The run is bounded: a fixed seed, derandomized generation and a cap on examples per
operation make one pass of every phase schemathesis has (probing, examples, coverage —
which also sends methods the schema does not list and expects 405 with ``Allow`` —,
fuzzing, stateful), about 1,000 requests; no ``max-time``, which would repeat fuzzing
until the time is up. The test's own timeout bounds the wall time. Any failed check, or
an error, fails the test with what schemathesis said.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from fleetwatch.config import HistoryConfig
from fleetwatch.demo.supervisord import Program, Supervisord, demo_program
from tests.conftest import HubServer, source_config, wait_for

SEED = 8
MAX_EXAMPLES = 25


def run_schemathesis(
    url: str, headers: dict[str, str] | None = None
) -> tuple[list[str], set[str], int]:
    """(failures and errors as text, the operations tested, the cases sent); ``headers``
    go with every request (a bearer token, issue 11)."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",  # valid data must be taken, invalid data refused
            },
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", config=config)
    schema.config.update(base_url=url, headers=headers)
    problems: list[str] = []
    tested: set[str] = set()
    cases = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            cases += len(recorder.cases)
            if event.status != Status.SKIP:
                tested.add(recorder.label)
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE:
                        info = check.failure_info
                        detail = info.failure.title if info is not None else "?"
                        message = info.failure.message if info is not None else ""
                        problems.append(f"{recorder.label}: {check.name}: {detail}\n{message}")
            if event.status == Status.ERROR:
                problems.append(f"{recorder.label}: error")
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason.value == "completed", event.stop_reason
    return problems, tested, cases


@pytest.mark.real
@pytest.mark.timeout(180)
def test_schemathesis_finds_no_failure_of_any_check_issue8(
    supervisors: Callable[..., Supervisord],
    hub_server: Callable[..., HubServer],
    tmp_path: Path,
) -> None:
    sv = supervisors(
        "alpha",
        [
            Program("web", demo_program("service", "alpha-web")),
            Program("talker", demo_program("talker", "alpha-talker")),
            Program("worker", demo_program("worker", "alpha-worker"), numprocs=2, group="workers"),
        ],
    )
    history = HistoryConfig(url=str(tmp_path / "test.history.db"))  # its routes too (issue 13)
    hub = hub_server(source_config(sv), history=history)
    wait_for(lambda: len(hub.processes()) == 4, 20, "alpha's processes")
    operations = {
        f"{method.upper()} {path}"
        for path, ops in hub.get("/api/openapi.json")["paths"].items()
        for method in ops
    }
    assert {  # a few of them, from each issue that added some; all must be tested below
        "GET /api/fleet",
        "POST /api/actions",
        "GET /api/processes/{id}/log",
        "POST /api/login",  # issue 11
        "GET /api/audit",
        "GET /metrics",  # issue 13
        "GET /api/history/fleet",
    } <= operations
    assert len(operations) >= 23

    problems, tested, cases = run_schemathesis(hub.url)

    assert not problems, f"{len(problems)} failures:\n\n" + "\n\n".join(problems[:20])
    assert operations <= tested, f"not tested: {sorted(operations - tested)}"
    assert cases > 500
    assert hub.get("/api/health")["status"] == "ok"
