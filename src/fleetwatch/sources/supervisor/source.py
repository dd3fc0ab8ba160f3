"""Watching and controlling one supervisord over its XML-RPC interface.

No software runs on the watched host. Each session reads identity and the whole
process table in one ``system.multicall``, then polls ``getState`` +
``getAllProcessInfo`` every ``poll_interval`` seconds, one call in flight, each
with a deadline for the whole call (answer included) of at most one interval, so
a daemon that stops answering, or drips its answer, is offline within two
intervals. A big answer (20,000 processes) is decoded in steps between which the
event loop runs, and only the processes that changed since the last poll. Every
poll is a full read, so groups added or removed at runtime appear and disappear
on the next poll, and the model converges after every reconnect. An action wakes
the poller at once.

Model mapping: the supervisord is the source and its host one node
(``SOURCE/HOST``); each program is a process ``SOURCE:GROUP:NAME``.
``description`` of a RUNNING process is supervisord's "pid N, uptime H:MM:SS",
which changes every second: it is kept from the poll where the state, pid or
start time last changed, and clients compute a live uptime from ``started``
and the source's ``info.clock_offset`` (hub clock minus daemon clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import time
from collections.abc import Awaitable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from fleetwatch.config import SupervisorSourceConfig
from fleetwatch.errors import RemoteProtocolError, SourceError, UnknownTarget, Unreachable
from fleetwatch.model import ActionSpec, Node, ParamSpec, Process
from fleetwatch.sources.base import (
    ActionResult,
    Backoff,
    LogChunk,
    LogReader,
    Refresher,
    Source,
    SourceSink,
    Target,
)
from fleetwatch.sources.supervisor.agent import AgentClient, AgentLink, agent_tls
from fleetwatch.sources.supervisor.client import HTTPStatusError, XmlRpcClient, public_url
from fleetwatch.sources.supervisor.protocol import (
    STRUCT_CLOSE,
    STRUCT_OPEN,
    Fault,
    Faults,
    GroupResult,
    ProcessInfo,
    ProcessStates,
    ResponseDecoder,
    Signature,
    SupervisorStates,
    decode_multicall,
    decode_struct,
    member_pieces,
    struct_key,
)
from fleetwatch.sources.supervisor.zerorpc import MultivisorAgentClient

__all__ = ["ACTIONS", "LogChunk", "SupervisorSource"]

log = logging.getLogger(__name__)

SIGNALS = ("HUP", "INT", "TERM", "KILL", "USR1", "USR2", "QUIT", "STOP", "CONT")
_ALL = ("process", "group", "source")

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(name="start", title="Start", targets=_ALL, hotkey="s"),
    ActionSpec(name="stop", title="Stop", targets=_ALL, confirm=True, hotkey="x"),
    ActionSpec(name="restart", title="Restart", targets=_ALL, confirm=True, hotkey="r"),
    ActionSpec(
        name="signal",
        title="Send signal",
        targets=_ALL,
        confirm=True,
        params=(ParamSpec(name="signal", choices=SIGNALS, title="Signal"),),
    ),
    ActionSpec(name="clear_log", title="Clear logs", targets=("process", "source"), confirm=True),
    ActionSpec(name="update", title="Reread + update", targets=("source",), confirm=True),
    ActionSpec(name="reread", title="Reread config", targets=("source",)),
    ActionSpec(name="reload", title="Restart supervisord", targets=("source",), confirm=True),
    ActionSpec(name="shutdown", title="Shut down supervisord", targets=("source",), confirm=True),
)

#: Actions after which the changed state is read back before the answer (``_settle``).
_SETTLED = frozenset({"start", "stop", "restart", "signal", "update"})

#: Bytes a log read may be moved by to land on a UTF-8 character boundary (T15).
_UTF8_SLACK = 3

#: Bytes of an answer decoded (or signed) at a time, and the longest a step of the work
#: on a big answer may run before it yields to the event loop: 20,000 processes (a 25 MB
#: answer) must never stall the hub (issue #8).
_SLICE = 1 << 15
_STEP = 0.005
#: Up to this many processes are published with one ``sync``, at once.
_BATCH = 500


class _Steps:
    """Yields to the event loop once the current step of some work ran ``_STEP`` seconds."""

    def __init__(self) -> None:
        self.since = time.perf_counter()

    async def next(self) -> None:
        if time.perf_counter() - self.since > _STEP:
            await asyncio.sleep(0)
            self.since = time.perf_counter()


class SupervisorSource(Source, LogReader, Refresher):
    kind = "supervisor"

    def __init__(
        self,
        config: SupervisorSourceConfig,
        sink: SourceSink,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(config.name, sink, backoff=backoff)
        self.config = config
        self.interval = config.poll_interval
        self.poll_timeout = config.timeout or max(0.5, config.poll_interval)
        self.client: XmlRpcClient | MultivisorAgentClient | AgentClient
        self.agent: AgentLink | None = None
        """The fleetwatch-agent push channel (``agent = ...``); it polls ``url`` meanwhile."""
        if config.url is not None:
            self.client = XmlRpcClient(
                config.url,
                username=config.username,
                password=config.password,
                timeout=config.action_timeout,
                max_answer_size=config.max_answer_size,
                transport=transport,
            )
            self.host, self.address = _host_of(config.url)
        elif config.multivisor_rpc is not None:
            self.client = MultivisorAgentClient(
                config.multivisor_rpc, timeout=config.action_timeout
            )
            self.host = self.address = config.multivisor_rpc.rsplit(":", 1)[0] or "localhost"
        elif config.agent is None:
            raise SourceError(f"source {config.name!r} needs url, agent or multivisor_rpc")
        if config.agent is not None:
            pushed = AgentClient(
                config.agent,
                token=config.agent_token,
                timeout=config.action_timeout,
                tls=agent_tls(config.agent_ca),
            )
            polled = cast(XmlRpcClient, self.client) if config.url is not None else None
            self.agent = AgentLink(pushed, polled)
            if polled is None:
                self.client = pushed
                self.host = self.address = pushed.host
        self.node_id = f"{self.name}/{self.host}"
        self.last_ok: float | None = None
        self._poke = asyncio.Event()
        self._last_poll: bytes | None = None
        """The signature of the last poll's answer (to skip decoding unchanged ones)."""
        self._labels: dict[str, str] = {}
        self._known: dict[bytes, Process] = {}
        """:func:`struct_key` of each process struct of the last answer -> what it made."""
        self._ids: set[str] = set()
        """The ids of the processes last published."""
        self.refresh_timeout = 2 * self.poll_timeout + 1.0
        """The longest :meth:`refresh` waits: a poll in flight, then its own (and decoding)."""
        self._polling = False
        """True while a session polls (:meth:`_poll_forever`)."""
        self._begun = 0
        """Polls begun so far (each poll's number)."""
        self._settled = 0
        """Action read-backs reported so far: a poll begun before one is dropped."""
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        """Refreshes waiting: (the number of the poll that answers, its future)."""

    @property
    def url(self) -> str:
        if self.config.url is not None:
            return public_url(self.config.url)
        return self.client.endpoint

    def actions(self) -> tuple[ActionSpec, ...]:
        return ACTIONS

    # -- watching ------------------------------------------------------------------

    async def session(self) -> None:
        if self.agent is not None and not self.agent.polling:
            return await self.agent.session(self)  # it runs this polling session as a fallback
        self._last_poll = None
        self._known = {}
        if isinstance(self.client, MultivisorAgentClient):
            self.client.reset()  # a fresh socket per session (the host may have rebooted)
        calls: list[tuple[str, tuple[()]]] = [
            ("supervisor.getSupervisorVersion", ()),
            ("supervisor.getIdentification", ()),
            ("supervisor.getPID", ()),
            ("supervisor.getAPIVersion", ()),
            ("supervisor.getState", ()),
            ("supervisor.getAllProcessInfo", ()),
        ]
        if isinstance(self.client, XmlRpcClient):
            body = await self.client.multicall_body(calls, timeout=self.poll_timeout)
            results = await _decode_calls(body, len(calls))
            del body
        else:
            results = await self.client.multicall(calls, timeout=self.poll_timeout)
        version, ident, pid, api, state, infos = (_ok(r) for r in results)
        processes, fresh, clock = await self._table(infos)
        now = time.time()
        offset = math.floor(now - clock) if clock is not None else 0
        self._labels = {"identification": str(ident), "supervisor_version": str(version)}
        self._check_state(state)
        self.last_ok = now
        self.online(
            version=str(version),
            info={
                "identification": str(ident),
                "pid": pid,
                "api_version": str(api),
                "state": state.get("statename", ""),
                "clock_offset": offset,
            },
        )
        await self._commit_table(processes, fresh)
        follower = (
            asyncio.get_running_loop().create_task(self._follow(self.client))
            if isinstance(self.client, MultivisorAgentClient)
            else None
        )
        try:
            await self._poll_forever(follower)
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError, SourceError):
                    await follower

    async def _poll_forever(self, follower: asyncio.Task[None] | None) -> None:
        self._polling = True
        try:
            while True:
                await self._wait_tick()
                if follower is not None and follower.done():
                    follower.result()  # the event stream failed: end the session with its error
                self._begun += 1
                number, settled = self._begun, self._settled
                calls = [("supervisor.getState", ()), ("supervisor.getAllProcessInfo", ())]
                if isinstance(self.client, XmlRpcClient):
                    reported = await self._poll_xmlrpc(self.client, calls, settled)
                else:
                    results = await self.client.multicall(calls, timeout=self.poll_timeout)
                    state, infos = (_ok(r) for r in results)
                    self._check_state(state)
                    self.last_ok = time.time()
                    reported = self._settled == settled
                    if reported:
                        self._publish(ProcessInfo.list_from(infos))
                        self._last_poll = None
                if reported and self._settled == settled:
                    self._polled(number)
                else:
                    # An action's read-back was reported while this poll was on its way: the
                    # poll may have read the state before the action. Drop it; the action
                    # poked the poller, so the next poll begins at once.
                    self._last_poll = None
        finally:
            self._polling = False
            for _, waiting in self._waiters:
                if not waiting.done():
                    waiting.set_result(False)
            self._waiters.clear()

    def _polled(self, number: int) -> None:
        """Poll ``number`` is reported: wake the refreshes it answers."""
        keep: list[tuple[int, asyncio.Future[bool]]] = []
        for target, waiting in self._waiters:
            if target <= number:
                if not waiting.done():
                    waiting.set_result(True)
            else:
                keep.append((target, waiting))
        self._waiters = keep

    async def refresh(self) -> bool:
        """Poll now; return True once a poll that began after the call is reported.

        A poll already on its way when this is called may have read supervisord before
        what the caller just did, so the poll that answers is the next one to begin
        (the poke makes it begin as soon as the one in flight is done). False, at once,
        when no session is polling (connecting, offline), and after at most two polls'
        timeouts. With fleetwatch-agent, the agent is asked for a fresh snapshot.
        """
        if self.agent is not None and self.agent.following:
            return await self.agent.refresh(self.refresh_timeout)
        if not self._polling:
            return False
        waiting: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (self._begun + 1, waiting)
        self._waiters.append(entry)
        self.poke()
        await asyncio.wait({waiting}, timeout=self.refresh_timeout)
        if not waiting.done():
            waiting.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            return False
        return waiting.result()

    async def _poll_xmlrpc(
        self, client: XmlRpcClient, calls: list[tuple[str, tuple[()]]], settled: int
    ) -> bool:
        """One poll; False when it was dropped (an action's read-back came in meanwhile)."""
        # The call's deadline ends with the answer's last byte: decoding it, in slices
        # between which the hub goes on, is not the daemon's time (issue #8).
        body = await client.multicall_body(calls, timeout=self.poll_timeout)
        self.last_ok = time.time()
        signature = await _signature(body)
        if signature == self._last_poll:
            return True  # nothing changed: skip decoding, most of a poll's cost
        results = await _decode_calls(body, len(calls))
        del body
        state, infos = (_ok(r) for r in results)
        self._check_state(state)
        self.last_ok = time.time()
        processes, fresh, _ = await self._table(infos)
        if self._settled != settled:
            return False
        await self._commit_table(processes, fresh)
        self._last_poll = signature
        return True

    async def _wait_tick(self) -> None:
        # Not asyncio.wait_for: before Python 3.12 it swallows a cancellation that
        # arrives together with a poke, and the session then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval):
                await self._poke.wait()
        self._poke.clear()

    async def _follow(self, client: MultivisorAgentClient) -> None:
        """Apply the agent's events as they come; poll at once only when one is not enough.

        A process event carries the ``getProcessInfo`` struct the agent read for it: it
        is applied at once with the event's own state (Multivisor's trap T5: the struct,
        read later, may already have moved on, and short states would be lost), and the
        hub commits it without waiting for a poll. Only an event about a process the model
        does not have (a group was added) or about supervisord itself wakes the poller.
        """
        async for event in client.events():
            name = str(event.get("eventname", ""))
            payload = event.get("payload")
            applied = (
                name.startswith("PROCESS_STATE_")
                and isinstance(payload, dict)
                and self._apply_event(name.removeprefix("PROCESS_STATE_"), payload)
            )
            if not applied:
                self.poke()

    def _apply_event(self, state: str, payload: dict[str, Any]) -> bool:
        """Apply one process event; False when a poll must fill in what it cannot."""
        pid_id = f"{self.name}:{payload.get('groupname')}:{payload.get('processname')}"
        old = self.sink.get("process", pid_id)
        if not isinstance(old, Process) or state not in ProcessStates.__members__:
            return False
        try:
            info: ProcessInfo | None = ProcessInfo.from_struct(payload.get("process"))
        except RemoteProtocolError:
            info = None  # an agent that sends no struct: the state alone, details at the poll
        if info is None or f"{self.name}:{info.group}:{info.name}" != pid_id:
            self._put_process(dataclasses.replace(old, state=state))
        else:
            self._put_process(self._process(dataclasses.replace(info, statename=state)))
        return True

    def _put_process(self, new: Process) -> None:
        """Put one process and keep the node's ``running`` count in step with it."""
        old = self.sink.get("process", new.id)
        if not self.sink.put(new):
            return
        was = isinstance(old, Process) and old.state == "RUNNING"
        node = self.sink.get("node", self.node_id)
        if was != (new.state == "RUNNING") and isinstance(node, Node) and node.state == "online":
            metrics = dict(node.metrics)
            metrics["running"] = metrics.get("running", 0) + (1 if not was else -1)
            self._put_node("online", metrics)

    def poke(self) -> None:
        """Poll now instead of at the next tick (after an action)."""
        self._poke.set()

    def _check_state(self, state: Any) -> None:
        code = state.get("statecode") if isinstance(state, dict) else None
        if code in (SupervisorStates.RESTARTING, SupervisorStates.SHUTDOWN):
            raise Unreachable(f"supervisord is {state.get('statename', '?').lower()}")

    def _publish(self, infos: list[ProcessInfo]) -> None:
        self._commit([self._process(info) for info in infos])

    async def _table(self, items: Any) -> tuple[list[Process], list[Process], int | None]:
        """A getAllProcessInfo answer as processes: (all, the new or changed ones, ``now``).

        A struct left undecoded (``bytes``, see :func:`_decode_calls`) whose key was in
        the last answer is the process made of it then; the others are decoded.
        ``now`` is the daemon's clock in the first struct decoded (None if none was).
        """
        if not isinstance(items, list):
            ProcessInfo.list_from(items)  # raises, naming what came
        known, self._known = self._known, {}
        processes: list[Process] = []
        fresh: list[Process] = []
        clock: int | None = None
        steps = _Steps()
        for item in items:
            key = None
            if isinstance(item, bytes):
                key = struct_key(item)
                process = known.get(key)
                if process is not None:
                    processes.append(process)
                    self._known[key] = process
                    continue
                item = decode_struct(item)
            info = ProcessInfo.from_struct(item)
            clock = info.now if clock is None else clock
            process = self._process(info)
            processes.append(process)
            fresh.append(process)
            if key is not None:
                self._known[key] = process
            await steps.next()
        return processes, fresh, clock

    async def _commit_table(self, processes: list[Process], fresh: list[Process]) -> None:
        """Publish a poll's processes: those not in it are deleted (what ``sync`` does).

        A big table is not handed to ``sync`` whole (comparing 20,000 processes is 0.1 s
        of the loop): only the new or changed ones are put, a batch at a time.
        """
        if len(processes) <= _BATCH:
            self._commit(processes)
            return
        ids = {p.id for p in processes}
        steps = _Steps()
        for process in fresh:
            self.sink.put(process)
            await steps.next()
        for gone in self._ids - ids:
            self.sink.delete("process", gone)
        self._ids = ids
        self._put_metrics(processes)

    def _commit(self, processes: list[Process]) -> None:
        self.sink.sync("process", processes)
        self._ids = {p.id for p in processes}
        self._put_metrics(processes)

    def _put_metrics(self, processes: list[Process]) -> None:
        running = sum(p.state == "RUNNING" for p in processes)
        self._put_node("online", {"processes": len(processes), "running": running})

    def _process(self, info: ProcessInfo) -> Process:
        pid = info.pid or None
        started = float(info.start) if info.start else None
        pid_id = f"{self.name}:{info.group}:{info.name}"
        description = info.description
        old = self.sink.get("process", pid_id)
        if (
            isinstance(old, Process)
            and old.state == info.statename
            and old.pid == pid
            and old.started == started
        ):
            description = old.description  # don't churn on "uptime 0:00:07" (module doc)
        return Process(
            id=pid_id,
            source=self.name,
            group=info.group,
            name=info.name,
            state=info.statename,
            pid=pid,
            started=started,
            stopped=float(info.stop) if info.stop else None,
            exitstatus=info.exitstatus,
            description=description,
            spawnerr=info.spawnerr,
            stdout_logfile=info.stdout_logfile,
            stderr_logfile=info.stderr_logfile,
        )

    def _put_node(self, state: str, metrics: dict[str, float] | None = None) -> None:
        old = self.sink.get("node", self.node_id)
        since = old.since if isinstance(old, Node) and old.state == state else time.time()
        if metrics is None:
            metrics = dict(old.metrics) if isinstance(old, Node) else {}
        self.sink.put(
            Node(
                id=self.node_id,
                source=self.name,
                name=self.host,
                address=self.address,
                state=state,
                since=since,
                labels=self._labels,
                metrics=metrics,
            )
        )

    def online(self, **fields: Any) -> None:
        if self.agent is not None:
            fields = self.agent.status_fields(fields)  # which channel, and why polling
        super().online(**fields)

    def down(self, status: str, error: str | None) -> None:
        super().down(status, error)
        if self.sink.get("node", self.node_id) is not None:
            self._put_node("offline")

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.aclose()
        await self.client.aclose()

    # -- acting --------------------------------------------------------------------

    async def perform(self, target: Target, name: str, params: dict[str, Any]) -> ActionResult:
        try:
            if target.kind == "process":
                result = await self._on_process(self._process_of(target.id), name, params)
            elif target.kind == "group":
                result = await self._on_group(target.id.partition(":")[2], name, params)
            else:
                result = await self._on_daemon(name, params)
        except Fault as f:
            result = ActionResult.failed(str(f), {"fault": f.name, "code": f.code})
        except SourceError as exc:
            result = ActionResult.failed(str(exc))
        if name in _SETTLED:
            await self._settle(target)
        self.poke()
        return result

    async def _settle(self, target: Target) -> None:
        """Read back what an action changed, so that its delta is out before its answer."""
        # A multicall, as polls are: read-backs are no actions of their own.
        try:
            if target.kind == "process":
                p = self._process_of(target.id)
                one = [("supervisor.getProcessInfo", (f"{p.group}:{p.name}",))]
                [struct] = await self.client.multicall(one, timeout=self.poll_timeout)
                self._put_process(self._process(ProcessInfo.from_struct(_ok(struct))))
            else:
                every: list[tuple[str, tuple[()]]] = [("supervisor.getAllProcessInfo", ())]
                [infos] = await self.client.multicall(every, timeout=self.poll_timeout)
                self._publish(ProcessInfo.list_from(_ok(infos)))
        except (SourceError, UnknownTarget, ValueError):
            return  # the poll that follows reports what went wrong
        self._last_poll = None  # the model moved: the next poll must not be skipped as unchanged
        self._settled += 1  # and a poll on its way now may predate the action: it is dropped

    def _process_of(self, id: str) -> Process:
        p = self.sink.get("process", id)
        if not isinstance(p, Process):
            raise UnknownTarget(f"no process {id!r}")
        return p

    async def _on_process(self, p: Process, name: str, params: dict[str, Any]) -> ActionResult:
        ns = f"{p.group}:{p.name}"
        call = self.client.call
        if name == "start":
            return await _benign(call("supervisor.startProcess", ns, True), Faults.ALREADY_STARTED)
        if name == "stop":
            return await _benign(call("supervisor.stopProcess", ns, True), Faults.NOT_RUNNING)
        if name == "restart":
            stopped = await _benign(call("supervisor.stopProcess", ns, True), Faults.NOT_RUNNING)
            if not stopped.ok:
                return stopped
            return await _benign(call("supervisor.startProcess", ns, True), Faults.ALREADY_STARTED)
        if name == "signal":
            await call("supervisor.signalProcess", ns, params["signal"])
            return ActionResult(True)
        if name == "clear_log":
            await call("supervisor.clearProcessLogs", ns)
            return ActionResult(True)
        raise AssertionError(f"unrouted process action {name!r}")

    async def _on_group(self, group: str, name: str, params: dict[str, Any]) -> ActionResult:
        call = self.client.call
        if name == "start":
            return _grouped(await call("supervisor.startProcessGroup", group, True))
        if name == "stop":
            return _grouped(await call("supervisor.stopProcessGroup", group, True))
        if name == "restart":
            stopped = _grouped(await call("supervisor.stopProcessGroup", group, True))
            if not stopped.ok:
                return stopped
            return _grouped(await call("supervisor.startProcessGroup", group, True))
        if name == "signal":
            return _grouped(await call("supervisor.signalProcessGroup", group, params["signal"]))
        raise AssertionError(f"unrouted group action {name!r}")

    async def _on_daemon(self, name: str, params: dict[str, Any]) -> ActionResult:
        call = self.client.call
        if name == "start":
            return _grouped(await call("supervisor.startAllProcesses", True))
        if name == "stop":
            return _grouped(await call("supervisor.stopAllProcesses", True))
        if name == "restart":
            stopped = _grouped(await call("supervisor.stopAllProcesses", True))
            if not stopped.ok:
                return stopped
            return _grouped(await call("supervisor.startAllProcesses", True))
        if name == "signal":
            return _grouped(await call("supervisor.signalAllProcesses", params["signal"]))
        if name == "clear_log":
            return _grouped(await call("supervisor.clearAllProcessLogs"))
        if name == "reread":
            added, changed, removed = await self._reread()
            return ActionResult(
                True, None, {"added": added, "changed": changed, "removed": removed}
            )
        if name == "update":
            return await self._update()
        if name == "reload":
            await call("supervisor.restart")
            return ActionResult(True)
        if name == "shutdown":
            await call("supervisor.shutdown")
            return ActionResult(True)
        raise AssertionError(f"unrouted source action {name!r}")

    async def _reread(self) -> tuple[list[str], list[str], list[str]]:
        value = await self.client.call("supervisor.reloadConfig")
        try:
            [[added, changed, removed]] = value
        except (TypeError, ValueError):
            raise SourceError(f"reloadConfig answered {value!r:.80}") from None
        return list(added), list(changed), list(removed)

    async def _update(self) -> ActionResult:
        """What ``supervisorctl update`` does: reread, then apply the difference."""
        added, changed, removed = await self._reread()
        call = self.client.call
        errors: list[str] = []

        async def step(what: str, run: Awaitable[Any], benign: tuple[int, ...] = ()) -> None:
            try:
                await run
            except Fault as f:
                if f.code not in benign:
                    errors.append(f"{what}: {f}")

        # supervisorctl's order: each removed group, then each changed one, then each added one
        for group in removed + changed:
            await step(f"stop {group}", call("supervisor.stopProcessGroup", group, True))
            await step(f"remove {group}", call("supervisor.removeProcessGroup", group))
            if group in changed:
                await step(
                    f"add {group}",
                    call("supervisor.addProcessGroup", group),
                    (Faults.ALREADY_ADDED,),
                )
        for group in added:
            await step(
                f"add {group}", call("supervisor.addProcessGroup", group), (Faults.ALREADY_ADDED,)
            )
        detail = {"added": added, "changed": changed, "removed": removed}
        if errors:
            return ActionResult(False, "; ".join(errors), detail)
        return ActionResult(True, None, detail)

    # -- logs ----------------------------------------------------------------------

    async def read_log(
        self, process_id: str, channel: str, offset: int | None, length: int
    ) -> LogChunk:
        """Read ``length`` bytes of a log from ``offset`` (None: the last ``length`` bytes).

        supervisord decodes each window as strict UTF-8 and answers HTTP 500 when
        the window starts or ends inside a character (T15), so a failing window is
        moved by up to 3 bytes at each end until it lands on character boundaries.
        """
        if channel not in ("stdout", "stderr"):
            raise ValueError("channel must be stdout or stderr")
        p = self._process_of(process_id)
        ns = f"{p.group}:{p.name}"
        cap = channel.capitalize()
        # tail with length 0 returns no text, just the size: never splits anything.
        _, size, _ = await self.client.call(f"supervisor.tailProcess{cap}Log", ns, 0, 0)
        reset = False
        if offset is None:
            start = max(0, size - length)
        else:
            if offset > size:
                reset, offset = True, 0
            start = offset
        end = min(size, start + length)
        if end <= start:
            return LogChunk("", start, start, size, reset)
        # Move the end first: a follower reads on from our last end, which is already
        # a character boundary, so its window only ever needs the end moved. The end of
        # the log itself can be inside a character too (a writer between the two writes
        # of one), so the end moves even at ``size``: the rest comes with the next read.
        for s_shift in range(_UTF8_SLACK + 1 if start > 0 else 1):
            for e_shift in range(_UTF8_SLACK + 1):
                s, e = start + s_shift, end - e_shift
                if e <= s:
                    if e_shift and end == size and offset is None:
                        break  # a tail of half a character: move its start instead
                    # The window shrank to nothing at a boundary (``start`` when exact, else
                    # the end of the log): the requested bytes hold no whole character.
                    return LogChunk("", s, s, size, reset)
                try:
                    text = await self.client.call(f"supervisor.readProcess{cap}Log", ns, s, e - s)
                except HTTPStatusError as exc:
                    if exc.status == 500:
                        continue  # a split character: move the window
                    raise
                except Fault as f:
                    if f.code == Faults.NO_FILE:
                        return LogChunk("", 0, 0, 0, reset)
                    raise
                return LogChunk(str(text), s, e, size, reset)
        raise SourceError(f"could not read {channel} of {ns} at [{start}, {end}) as UTF-8")


async def _signature(body: bytes) -> bytes:
    """The :class:`Signature` of an answer, computed a slice at a time."""
    signature = Signature()
    if len(body) <= 4 * _SLICE:
        signature.update(body)  # well within a step: no pieces (most daemons)
        return signature.digest()
    steps = _Steps()
    for piece in member_pieces(body, _SLICE):
        signature.update(piece)
        await steps.next()
    return signature.digest()


async def _decode(body: bytes) -> Any:
    """``decode_response(body)``, a slice at a time."""
    decoder = ResponseDecoder()
    view = memoryview(body)
    steps = _Steps()
    for start in range(0, len(body), _SLICE):
        decoder.feed(view[start : start + _SLICE])
        await steps.next()
    return decoder.close()


#: In an answer's shell, the place of a run of structs: ``<nil/>`` (None), which
#: supervisord never sends (it marshals without ``allow_none``), so an answer holding
#: one, or a ``<base64>`` (bytes, what a struct is in a decoded shell), is decoded whole.
_PLACE = b"<value><nil/></value>\n"


async def _decode_calls(body: bytes, expected: int) -> list[Any]:
    """A multicall answer's results, where each struct inside a result is still ``bytes``.

    A big answer is decoded in two steps: its shell, where each run of structs is one
    ``<nil/>``, then each struct only when needed (:meth:`SupervisorSource._table`:
    most of 20,000 processes are as they were at the last poll). Its top-level structs
    (``getState``, a fault) are decoded here. An answer not written as the stdlib writes
    (a struct not between ``STRUCT_OPEN`` and ``STRUCT_CLOSE``, one inside another) is
    decoded whole, a slice at a time. Few objects are made either way: a full collection
    of the garbage collector walks all the hub's objects (0.1 s with 20,000 processes),
    and 20,000 dicts a poll would run one every few polls.
    """
    split = await _split_structs(body) if len(body) > _SLICE else None
    if split is None:
        return decode_multicall(await _decode(body), expected)
    shell, runs = split
    places = iter(runs)
    value = _fill(await _decode(shell), places)
    if next(places, None) is not None:
        raise RemoteProtocolError("an answer's structs do not match its shell")
    if isinstance(value, list):
        value = [decode_struct(v) if isinstance(v, bytes) else v for v in value]
    return decode_multicall(value, expected)


async def _split_structs(body: bytes) -> tuple[bytes, list[list[bytes]]] | None:
    """``body`` with each run of structs made one ``<nil/>``, and the runs' members."""
    if b"<nil" in body or b"<base64" in body:
        return None
    shell: list[bytes] = []
    runs: list[list[bytes]] = []
    at = pos = count = 0
    steps = _Steps()
    while (start := body.find(STRUCT_OPEN, pos)) >= 0:
        end = body.find(STRUCT_CLOSE, start)
        if end < 0:
            return None
        members = body[start + len(STRUCT_OPEN) : end]
        if b"<struct>" in members:
            return None  # a struct inside a struct: not the shape of a process table
        if start != pos or not runs:  # not right after the last struct: a new run
            shell += (body[at:start], _PLACE)
            runs.append([])
        runs[-1].append(members)
        count += 1
        at = pos = end + len(STRUCT_CLOSE)
        await steps.next()
    if body.count(b"<struct>") != count:
        return None  # a struct written otherwise: decode it all the usual way
    shell.append(body[at:])
    return b"".join(shell), runs


def _fill(value: Any, places: Iterator[list[bytes]]) -> Any:
    """``value`` with each None (a run of structs), in document order, made its structs."""
    if value is None:
        run = next(places, None)
        if run is None or len(run) != 1:
            raise RemoteProtocolError("an answer's structs do not match its shell")
        return run[0]
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            if v is None:
                run = next(places, None)
                if run is None:
                    raise RemoteProtocolError("an answer's structs do not match its shell")
                out += run
            else:
                out.append(_fill(v, places))
        return out
    return value


def _ok(result: Any) -> Any:
    if isinstance(result, Fault):
        raise result
    return result


async def _benign(run: Awaitable[Any], benign: int) -> ActionResult:
    """Run a start/stop call; the fault saying the goal is already reached is success (T13)."""
    try:
        await run
    except Fault as f:
        if f.code == benign:
            return ActionResult(True, None, {"note": f.name})
        raise
    return ActionResult(True)


def _grouped(value: Any) -> ActionResult:
    """A group/all call's result array: ok when every item succeeded."""
    if isinstance(value, bool):
        return ActionResult(value, None if value else "supervisord answered false")
    results = GroupResult.list_from(value)
    failed = [r for r in results if not r.ok]
    detail = [dataclasses.asdict(r) for r in results]
    if failed:
        text = "; ".join(f"{r.group}:{r.name}: {r.description}" for r in failed)
        return ActionResult(False, text, detail)
    return ActionResult(True, None, detail)


def _host_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return socket.gethostname(), parts.path or parts.netloc
    host = parts.hostname or "localhost"
    return host, host
