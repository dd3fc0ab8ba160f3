"""Finding an icecream scheduler, and its text control port.

Discovery replies and text-port transcripts come from the recorded capture
(``tests/vectors/icecream-capture.jsonl``, ``CAPTURES.md`` §1, lines 671-683).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetwatch.errors import RemoteProtocolError, Unreachable
from fleetwatch.sources.icecream.discovery import (
    DEFAULT_PORT,
    QUERY_VERSION,
    Scheduler,
    choose,
    explicit_scheduler,
    parse_reply,
    query,
    split_host_port,
)
from fleetwatch.sources.icecream.textport import (
    KeptTextPort,
    TextPort,
    parse_listblocks,
    parse_listcs,
)

CAPTURE = Path(__file__).resolve().parents[1] / "vectors" / "icecream-capture.jsonl"
START = 0x6B03536B  # the lab scheduler's start time, as its replies give it


@functools.cache
def capture_lines() -> dict[int, dict[str, Any]]:
    assert CAPTURE.is_file(), f"the recorded capture is missing: {CAPTURE}"
    lines = CAPTURE.read_text().splitlines()
    return {n: json.loads(lines[n - 1]) for n in range(671, 684)}


# -- discovery replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sent", "size", "version", "start_time"),
    [
        (671, 30, 16, 0, 0),
        (672, 35, 32, 43, START),
        (673, 38, 268, 43, START),
        (674, 43, 268, 43, START),
    ],
)
def test_recorded_replies(line: int, sent: int, size: int, version: int, start_time: int) -> None:
    record = capture_lines()[line]
    assert record["session"] == "discovery"
    assert record["query_version"] == sent
    assert query(sent) == bytes.fromhex(record["query_hex"])
    reply = bytes.fromhex(record["reply_hex"])
    assert len(reply) == size
    got = parse_reply(reply, sent, "127.0.0.1", 8765)
    assert got == Scheduler(
        host="127.0.0.1", port=8765, version=version, start_time=start_time, netname="ICELAB"
    )
    assert got.address == "127.0.0.1:8765"


def test_version_20_gets_no_reply_and_cannot_be_sent() -> None:
    record = capture_lines()[675]
    assert (record["query_version"], record["reply_hex"]) == (20, None)
    with pytest.raises(ValueError, match=r"21\.\.127"):
        query(20)
    with pytest.raises(ValueError, match=r"21\.\.127"):
        query(128)
    assert query() == bytes([QUERY_VERSION]) == b"\x2b"


def test_a_reply_read_with_the_wrong_query_version_is_refused() -> None:
    reply = bytes.fromhex(capture_lines()[674]["reply_hex"])  # mark 0x2e = 43 + 3
    with pytest.raises(RemoteProtocolError, match="not a discovery reply to version 38"):
        parse_reply(reply, 38)


def test_the_three_formats() -> None:
    start = (7 << 32) | 0x01020304
    short = bytes([31]) + b"net" + b"\0" * 12
    assert parse_reply(short, 30) == Scheduler(host="", port=DEFAULT_PORT, netname="net")
    little = bytes([35 + 2]) + struct.pack("<IQ", 36, start) + b"net\0".ljust(19, b"\0")
    assert parse_reply(little, 35, "h", 1) == Scheduler(
        host="h", port=1, version=36, start_time=start, netname="net"
    )
    big = bytes([43 + 3]) + struct.pack(">III", 44, 7, 0x01020304) + b"net".ljust(255, b"\0")
    assert parse_reply(big, 43) == Scheduler(
        host="", port=DEFAULT_PORT, version=44, start_time=start, netname="net"
    )


def test_netname_is_cut_at_nul_and_the_last_byte_forced_to_nul() -> None:
    # the receiver forces the last byte to NUL, so a full 16-byte reply keeps 14 characters
    assert parse_reply(bytes([31]) + b"A" * 15, 30).netname == "A" * 14
    assert parse_reply(bytes([31]) + b"ab\0cd" + b"\0" * 10, 30).netname == "ab"
    assert parse_reply(bytes([31]) + b"\xff\xfe" + b"\0" * 13, 30).netname == "\ufffd\ufffd"
    assert parse_reply(bytes([31, 0]), 30).netname == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x1e" + b"ICELAB".ljust(15, b"\0"),  # mark 0: the query echoed
        b"\x22" + b"ICELAB".ljust(15, b"\0"),  # mark 4
        b"\x1f",  # mark 1, no netname
        b"\x20" + b"\0" * 12,  # mark 2, 13 bytes
        b"\x21" + b"\0" * 12,  # mark 3, 13 bytes
        b"\xff" * 268,
        b"ICF" + b"\0" * 265,  # a scheduler announcement, not a reply
    ],
)
def test_garbage_replies(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_reply(data, 30)


# -- choosing -------------------------------------------------------------------------------------


def sched(name: str, version: int = 43, start: int = 100, host: str = "h") -> Scheduler:
    return Scheduler(host=host, port=8765, version=version, start_time=start, netname=name)


def test_choose_matches_netname_case_insensitively() -> None:
    icelab = sched("ICELAB", host="a")
    other = sched("OTHER", version=44, host="b")
    assert choose([other, icelab], "icelab") is icelab
    assert choose([other, icelab], "IceLab") is icelab
    assert choose([other, icelab], "nope") is None
    assert choose([], "ICELAB") is None


@pytest.mark.parametrize("wanted", [None, "", "icecream", "ICECREAM"])
def test_an_empty_netname_means_icecream(wanted: str | None) -> None:
    named = sched("ICECREAM", host="a")
    unnamed = sched("", start=50, host="b")
    icelab = sched("ICELAB", version=44, host="c")
    assert choose([named, icelab], wanted) is named
    assert choose([unnamed, named, icelab], wanted) is unnamed  # same version, older
    assert choose([icelab], wanted) is None


def test_choose_highest_version_then_oldest_start() -> None:
    old43 = sched("N", 43, start=10, host="a")
    new43 = sched("N", 43, start=20, host="b")
    new44 = sched("N", 44, start=30, host="c")
    assert choose([new43, old43], "N") is old43
    assert choose([old43, new43, new44], "N") is new44
    assert choose([sched("N", 128, host="bogus"), new43], "N") is new43  # versions >= 128 are bogus


# -- explicit scheduler ---------------------------------------------------------------------------


def test_explicit_scheduler_order() -> None:
    env = {"ICECC_SCHEDULER": "env:1", "USE_SCHEDULER": "legacy:2"}
    assert explicit_scheduler("conf:3", env) == "conf:3"
    assert explicit_scheduler(None, env) == "env:1"
    assert explicit_scheduler("", env) == "env:1"
    assert explicit_scheduler("auto", env) == "env:1"
    assert explicit_scheduler("auto", {"USE_SCHEDULER": "legacy:2"}) == "legacy:2"
    assert explicit_scheduler(None, {"ICECC_SCHEDULER": "", "USE_SCHEDULER": "legacy"}) == "legacy"
    assert explicit_scheduler("auto", {}) is None
    assert explicit_scheduler(None, {"OTHER": "x"}) is None


def test_explicit_scheduler_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ICECC_SCHEDULER", raising=False)
    monkeypatch.setenv("USE_SCHEDULER", "from-env:9")
    assert explicit_scheduler() == "from-env:9"
    monkeypatch.setenv("ICECC_SCHEDULER", "first:8")
    assert explicit_scheduler("auto") == "first:8"
    assert explicit_scheduler("auto", {}) is None  # an env dict replaces os.environ


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sched", ("sched", DEFAULT_PORT)),
        ("sched:9000", ("sched", 9000)),
        ("10.0.0.1:8765", ("10.0.0.1", 8765)),
        (":8766", ("", 8766)),  # ":port" alone: discover, on that port
        ("a:b:9", ("a:b", 9)),  # the last colon; no IPv6 literals
        ("::1:65535", ("::1", 65535)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


def test_split_host_port_default_and_bad_ports() -> None:
    assert split_host_port("h", 1234) == ("h", 1234)
    for bad in ("h:", "h:x", "h:0", "h:65536", "h:-1", "h: 80"):
        with pytest.raises(ValueError, match="bad port"):
            split_host_port(bad)


# -- text port: parsing ---------------------------------------------------------------------------


def test_parse_listcs_on_the_recorded_reply() -> None:
    record = capture_lines()[677]
    assert record["command"] == "listcs"
    hosts = parse_listcs(record["reply"])
    assert hosts == {
        "icelab-client": {
            "address": "127.0.0.1:0",
            "platform": "x86_64",
            "speed": "92.80",
            "jobs": "3",  # more than max: the submitter builds some jobs itself
            "max_jobs": "2",
            "load": "20",
        },
        "icelab-remote1": {
            "address": "127.0.0.1:10246",
            "platform": "x86_64",
            "speed": "113.25",
            "jobs": "2",
            "max_jobs": "2",
            "load": "20",
        },
        "icelab-remote2": {
            "address": "127.0.0.1:10247",
            "platform": "x86_64",
            "speed": "111.73",
            "jobs": "0",
            "max_jobs": "2",
            "load": "21",
        },
    }


def test_parse_listcs_odd_lines() -> None:
    reply = " old (10.0.0.9:10245) [] speed=0.00 jobs=0/-1 load=1000\n   3 WAIT sub:a on:b f.c\n"
    assert parse_listcs(reply) == {
        "old": {
            "address": "10.0.0.9:10245",
            "platform": "",
            "speed": "0.00",
            "jobs": "0",
            "max_jobs": "-1",
            "load": "1000",
        }
    }
    assert parse_listcs(capture_lines()[678]["reply"]) == {}  # listjobs lines are not hosts
    assert parse_listcs("") == {}


def test_parse_listblocks_on_the_recorded_replies() -> None:
    lines = capture_lines()
    assert (lines[679]["command"], lines[681]["command"]) == ("listblocks", "listblocks")
    assert parse_listblocks(lines[679]["reply"]) == []
    assert parse_listblocks(lines[681]["reply"]) == ["icelab-remote2"]
    assert parse_listblocks("   a\n\n   b\n") == ["a", "b"]


# -- text port: a client against a stand-in scheduler --------------------------------------------


def _answer(reply: str) -> str:
    """What TextPort.run returns for a recorded reply: its lines before the ``200`` line."""
    assert reply.endswith("200 done\n")
    return reply.removesuffix("200 done\n").removesuffix("\n")


class TextPortStandIn:
    """A byte-exact stand-in for icecc-scheduler 1.4's text port, following the capture.

    It sends the recorded greeting (line 676: ``200-ICECC 1.4.0: …`` then ``200 Use
    'help' for help and 'quit' to quit.``) and answers as the recorded transcript
    does (lines 677-683): ``listcs`` and ``listjobs`` with their recorded replies;
    ``blockcs H`` with ``removing host H``, ``unblockcs H`` with nothing, and
    ``listblocks`` with one ``   H`` line per blocked host, each reply ending
    ``200 done``; ``quit`` with ``200 Good Bye!``, then it closes. ``misbehave``
    replaces the reply to a command (and closes), for tests of a peer that does
    not follow the capture.
    """

    def __init__(self, misbehave: dict[str, bytes] | None = None, greet: bool = True) -> None:
        lines = capture_lines()
        self.greeting = lines[676]["reply"].encode()
        self.recorded = {lines[n]["command"]: lines[n]["reply"].encode() for n in (677, 678)}
        self.misbehave = misbehave or {}
        self.greet = greet
        self.blocked: list[str] = []
        self.commands: list[str] = []
        self.finished = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def reply(self, command: str) -> bytes:
        verb, _, host = command.partition(" ")
        verb = verb.lower()  # the scheduler takes commands in any case
        if verb == "quit":
            return b"200 Good Bye!\n"
        if verb in self.recorded:
            return self.recorded[verb]
        if verb == "listblocks":
            return b"".join(f"   {h}\n".encode() for h in self.blocked) + b"200 done\n"
        if verb == "blockcs":
            self.blocked.append(host)
            return f"removing host {host}\n200 done\n".encode()
        if verb == "unblockcs":
            self.blocked.remove(host)
            return b"200 done\n"
        raise AssertionError(f"the stand-in has no recorded reply to {command!r}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            if self.greet:
                writer.write(self.greeting)
            while True:
                line = await reader.readline()
                if not line:
                    break
                command = line.decode().rstrip("\n")
                self.commands.append(command)
                if command in self.misbehave:
                    writer.write(self.misbehave[command])
                    break
                writer.write(self.reply(command))
                await writer.drain()
                if command == "quit":
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.finished.set()


def test_the_stand_in_replays_the_transcript_byte_for_byte() -> None:
    peer = TextPortStandIn()
    lines = capture_lines()
    assert lines[676]["command"] is None
    assert peer.greeting.startswith(b"200-ICECC 1.4.0: ")
    assert peer.greeting.endswith(b"\n200 Use 'help' for help and 'quit' to quit.\n")
    for n in range(677, 684):
        assert peer.reply(lines[n]["command"]) == lines[n]["reply"].encode(), n


@contextlib.asynccontextmanager
async def stand_in(**kw: Any) -> AsyncIterator[TextPortStandIn]:
    peer = TextPortStandIn(**kw)
    peer.server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    try:
        yield peer
    finally:
        peer.server.close()
        await peer.server.wait_closed()


async def finished(peer: TextPortStandIn) -> None:
    await asyncio.wait_for(peer.finished.wait(), 10)


@pytest.mark.anyio
async def test_textport_runs_the_recorded_session() -> None:
    lines = capture_lines()
    commands = [lines[n]["command"] for n in range(677, 683)]
    async with stand_in() as peer:
        answers = await TextPort("127.0.0.1", peer.port).run(*commands)
        await finished(peer)
    assert peer.commands == [*commands, "quit"]
    assert answers == [_answer(lines[n]["reply"]) for n in range(677, 683)]
    assert answers[2] == ""  # listblocks: nothing blocked yet
    assert answers[3] == "removing host icelab-remote2"
    assert sorted(parse_listcs(answers[0])) == ["icelab-client", "icelab-remote1", "icelab-remote2"]
    assert parse_listblocks(answers[4]) == ["icelab-remote2"]
    assert (
        answers[1].splitlines()[0] == " 5 COMP sub:icelab-client on:icelab-client work/src/unit5.c"
    )


@pytest.mark.anyio
async def test_textport_without_commands_just_says_goodbye() -> None:
    async with stand_in() as peer:
        assert await TextPort("127.0.0.1", peer.port).run() == []
        await finished(peer)
    assert peer.commands == ["quit"]


@pytest.mark.anyio
async def test_textport_refuses_multi_line_commands() -> None:
    async with stand_in() as peer:
        for bad in ("listcs\nquit", "blockcs a\r"):
            with pytest.raises(ValueError, match="one line"):
                await TextPort("127.0.0.1", peer.port).run("listblocks", bad)
    assert peer.commands == []  # refused before connecting


@pytest.mark.anyio
async def test_textport_peer_closing_early_is_a_remote_error() -> None:
    async with stand_in(misbehave={"listcs": b" icelab-client (127.0.0.1:0) [x86_64]\n"}) as peer:
        with pytest.raises(RemoteProtocolError, match="closed before '200 done'"):
            await TextPort("127.0.0.1", peer.port).run("listcs")
        await finished(peer)


@pytest.mark.anyio
@pytest.mark.parametrize("refusal", [b"400 unknown command\n", b"500 internal error\n"])
async def test_textport_error_replies_are_remote_errors(refusal: bytes) -> None:
    async with stand_in(misbehave={"removecs x": refusal}) as peer:
        with pytest.raises(RemoteProtocolError, match="refused: " + refusal.decode().strip()):
            await TextPort("127.0.0.1", peer.port).run("removecs x")
        await finished(peer)


@pytest.mark.anyio
async def test_textport_that_never_greets_times_out() -> None:
    async with stand_in(greet=False) as peer:
        with pytest.raises(Unreachable, match="no answer"):
            await TextPort("127.0.0.1", peer.port, timeout=0.3).run("listcs")
        await finished(peer)
    assert peer.commands == []


@pytest.mark.anyio
async def test_textport_connection_refused_is_unreachable() -> None:
    # a port that was just in use and is now closed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unreachable, match=f"text port 127.0.0.1:{port}"):
        await TextPort("127.0.0.1", port).run("listcs")


def test_textport_defaults() -> None:
    port = TextPort("h", 8766)
    assert (port.host, port.port) == ("h", 8766)
    assert port.timeout >= 45  # the scheduler may take ~36 s to accept (trap 3)


@pytest.mark.anyio
async def test_kept_textport_runs_every_command_on_one_connection() -> None:
    """Guards against trap 3: a new text connection may wait ~36 s for an idle scheduler to
    accept it, so the source's block/unblock must reuse the open one."""
    async with stand_in() as peer:
        port = KeptTextPort("127.0.0.1", peer.port)
        assert await port.run("listblocks") == [""]
        assert await port.run("blockcs icelab-remote1") == ["removing host icelab-remote1"]
        assert parse_listblocks((await port.run("listblocks"))[0]) == ["icelab-remote1"]
        assert port.connected
        await port.close()
        await finished(peer)
    assert peer.connections == 1
    assert peer.commands == ["listblocks", "blockcs icelab-remote1", "listblocks", "quit"]
    assert not port.connected


@pytest.mark.anyio
async def test_kept_textport_reopens_a_connection_the_scheduler_closed() -> None:
    async with stand_in() as peer:
        port = KeptTextPort("127.0.0.1", peer.port)
        await port.run("listblocks")
        peer.writers[0].close()  # the scheduler's 36 s idle cut-off
        await finished(peer)
        peer.finished.clear()
        assert await port.run("blockcs h1") == ["removing host h1"]
        await port.close()
        await finished(peer)
    assert peer.connections == 2
    assert peer.commands == ["listblocks", "blockcs h1", "quit"]


@pytest.mark.anyio
async def test_kept_textport_refusal_is_not_retried_and_drops_the_connection() -> None:
    async with stand_in(misbehave={"removecs x": b"400 unknown command\n"}) as peer:
        port = KeptTextPort("127.0.0.1", peer.port)
        with pytest.raises(RemoteProtocolError, match="refused"):
            await port.run("removecs x")
        assert not port.connected
        await finished(peer)
    assert peer.commands == ["removecs x"]  # once, no retry
    assert peer.connections == 1
