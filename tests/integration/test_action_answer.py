"""An action's answer comes after its change is in the model and pushed (issue #8, item 10).

Real supervisord, polled over XML-RPC or watched through Multivisor's real agent. The
poll interval is an hour, so only the action's own read-back can bring the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fleetwatch.config import Config, SupervisorSourceConfig
from fleetwatch.demo.supervisord import Program, Supervisord, free_port
from fleetwatch.hub import Hub
from fleetwatch.model import Delta, Process
from fleetwatch.sources.base import Target
from tests.integration.test_multivisor_agent import agent_program


@pytest.mark.parametrize("mode", ["xmlrpc", "agent"])
def test_the_answer_follows_the_pushed_delta_issue8_post_before_delta(
    mode: str, supervisors: Callable[..., Supervisord]
) -> None:
    port = free_port()
    programs = [Program("sleeper", "/bin/sleep 100000", startsecs=0)]
    if mode == "agent":
        programs.append(agent_program(port))
    sv = supervisors("sv", programs)
    where = {"url": sv.url} if mode == "xmlrpc" else {"multivisor_rpc": f"127.0.0.1:{port}"}
    source = SupervisorSourceConfig(name="sv", poll_interval=3600.0, **where)  # type: ignore[arg-type]

    async def scenario() -> None:
        hub = Hub(Config(path="test", sources={"sv": source}))
        sub = hub.subscribe()
        await hub.start()
        try:
            async with asyncio.timeout(20):
                while hub.fleet.get("process", "sv:sleeper:sleeper") is None:
                    await sub.next()
            sub._items.clear()
            for action, state in (("stop", "STOPPED"), ("start", "RUNNING")):
                result = await hub.run_action(Target("process", "sv:sleeper:sleeper"), action)
                assert result.ok, result
                # No await since the answer: what is here came before it.
                process = hub.fleet.get("process", "sv:sleeper:sleeper")
                assert isinstance(process, Process)
                assert process.state == state
                assert not hub.fleet.dirty
                pushed = [
                    c.value.state  # type: ignore[union-attr]
                    for item in sub._items
                    if isinstance(item, Delta)
                    for c in item.changes
                    if c.id == "sv:sleeper:sleeper"
                ]
                assert pushed[-1] == state
                sub._items.clear()
        finally:
            await hub.stop()

    asyncio.run(scenario())
