"""The Multivisor agent client (zerorpc): how the agent's errors map, and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from fleetwatch.errors import SourceError, Unreachable
from fleetwatch.sources.supervisor.protocol import Fault, Faults
from fleetwatch.sources.supervisor.zerorpc import MultivisorAgentClient, ZeroRPCEvent, remote_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # What multivisor-rpc relays, in this order, once its supervisord is killed (SIGKILL):
        ("ConnectionResetError", "[Errno 104] Connection reset by peer"),
        ("FileNotFoundError", "[Errno 2] No such file or directory"),
        ("CannotSendRequest", "Request-sent"),
        ("ConnectionRefusedError", "[Errno 111] Connection refused"),
        ("RemoteDisconnected", "Remote end closed connection without response"),
    ],
)
def test_agent_that_cannot_reach_supervisord_means_offline_issue8_killed_daemon(
    name: str, message: str
) -> None:
    error = remote_error([name, message, "Traceback ..."])
    assert isinstance(error, Unreachable)
    assert "cannot reach its supervisord" in str(error)
    assert name in str(error)


def test_a_stuck_agent_connection_says_to_restart_the_agent_issue8() -> None:
    error = remote_error(["CannotSendRequest", "Request-sent", ""])
    assert isinstance(error, Unreachable)
    assert "restart the agent" in str(error)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["Fault", "<Fault 70: 'NOT_RUNNING: web'>", ""], Fault),
        (["ProtocolError", "<ProtocolError for localhost/RPC2: 401 Unauthorized>", ""], None),
        (["KeyError", "'len'", ""], None),
    ],
)
def test_other_agent_errors_stay_errors(args: list[str], expected: type | None) -> None:
    error = remote_error(args)
    assert not isinstance(error, Unreachable)
    assert isinstance(error, expected or SourceError)
    if isinstance(error, Fault):
        assert error.code == Faults.NOT_RUNNING


async def test_a_cancel_that_meets_an_event_still_cancels_issue8_hub_stop() -> None:
    """hub.stop() hung: asyncio.wait_for (3.11) swallowed a cancel arriving with an event."""
    client = MultivisorAgentClient("127.0.0.1:9")  # never connects: no call is made
    mid = b"channel"
    queue: asyncio.Queue[ZeroRPCEvent] = asyncio.Queue()
    client._channels[mid] = queue
    reader = asyncio.get_running_loop().create_task(client._next(mid, 60))
    await asyncio.sleep(0)  # it is waiting on the channel now
    queue.put_nowait(ZeroRPCEvent({}, "_zpc_hb", [0]))  # a heartbeat, at the same moment
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
