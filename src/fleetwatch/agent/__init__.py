"""fleetwatch-agent: a supervisord event listener that pushes its changes to fleetwatch hubs.

**Standard library only; runs on Python 3.8+**, so it installs into whatever Python
supervisord runs on (``pip install fleetwatch`` there, or copy this package: it imports
nothing from the rest of fleetwatch). ``fleetwatch-agent --print-config`` prints the
``[eventlistener:fleetwatch]`` section to paste into supervisord.conf.

What it does
============

supervisord starts it as an event listener (events ``PROCESS_STATE``,
``PROCESS_GROUP``, ``SUPERVISOR_STATE_CHANGE`` and ``REMOTE_COMMUNICATION``). It keeps
a model of its supervisord — a snapshot plus every change since, each change numbered
— and serves it to hubs over TCP (default ``127.0.0.1:9002``; TLS when given a
certificate and key). It passes a hub's control calls on to supervisord's XML-RPC,
with the credentials supervisord gives it (``SUPERVISOR_SERVER_URL``,
``SUPERVISOR_USERNAME``, ``SUPERVISOR_PASSWORD``). Every connection is authenticated
with a shared token (``FLEETWATCH_AGENT_TOKEN`` or ``--token-file``); without one
it binds nothing but loopback.

supervisord's quirks it handles (protocol notes §4.3, §5):

* ``len`` counts characters, not bytes (T18): stdin is read as UTF-8 text, without
  newline translation, and ``len`` characters are taken.
* stdout is the protocol channel: after start-up ``sys.stdout`` and fd 1 point at
  stderr, so a stray print cannot put the listener into UNKNOWN.
* Buffer overflow drops the oldest events (T17): a jump in ``poolserial`` makes the
  agent take a fresh snapshot, which hubs receive as a ``snapshot`` frame.
* Groups added at runtime (T6): ``PROCESS_GROUP_ADDED`` re-reads the process table
  (and the config, for ``startsecs``); a state event for an unknown process creates it.
* supervisord restarting: the agent is its child and is restarted with it; hubs
  reconnect and get a new snapshot (a new ``epoch``).
* An event supervisord makes on its own waits in its buffer for the next pass of its
  poll loop, up to 1 s (T4): the agent wakes the loop when an event is due
  (:class:`~fleetwatch.agent.agent.Waker`), with no thread inside supervisord.

The wire (protocol 1)
=====================

Newline-delimited JSON over TCP (or TLS), UTF-8, one object per line, at most 16 MiB.

Handshake, on every connection, before anything else::

    agent → {"t":"hello","agent":"fleetwatch-agent","protocol":1,"nonce":NA,"auth":"token"|"none"}
    hub   → {"t":"auth","nonce":NC,"proof":HMAC-SHA256(token, "fleetwatch-hub\\0"+NA+"\\0"+NC)}
    agent → {"t":"welcome","proof":HMAC-SHA256(token, "fleetwatch-agent\\0"+NA+"\\0"+NC),"epoch":E}
         or {"t":"refused","error":"..."} and it hangs up

The token never crosses the wire; proofs are compared with ``hmac.compare_digest``.
The hub checks the agent's proof too (an impostor cannot answer it). The hub has 10 s
to authenticate.

Requests (hub → agent) and their answers::

    {"op":"subscribe"}    → a "snapshot" frame, then every numbered frame after it
    {"op":"snapshot"}     → the agent re-reads supervisord; a new "snapshot" frame follows
    {"op":"call","id":N,"method":"supervisor.X","params":[...]}
                          → {"t":"reply","id":N,"value":V}
                          | {"t":"reply","id":N,"fault":{"code":C,"string":S}}
                          | {"t":"reply","id":N,"error":TEXT[,"http_status":500]}
    {"op":"ping"}         → {"t":"pong"}

Only ``supervisor.*`` and ``system.*`` methods are passed on; calls run concurrently
(8 at most per connection) and replies come in any order. The token is therefore full
control of supervisord, as its XML-RPC credentials are: keep it as secret as they are.

Stream frames carry ``seq``, consecutive within one ``epoch``::

    {"t":"snapshot","seq":S,"epoch":E,"supervisor":{identification,version,pid,api_version,state},
     "processes":[getProcessInfo structs]}
    {"t":"process","seq":S,"event":"PROCESS_STATE_X"|null,"from_state":F,"process":{...}}
    {"t":"gone","seq":S,"group":G,"name":N}
    {"t":"supervisor","seq":S,"event":"SUPERVISOR_STATE_CHANGE_X","state":{statecode,statename}}

A ``process`` frame is the whole record. One with an ``event`` is sent the moment the
event arrives, with the event's own state (trap T5); one with ``"event":null`` follows
with the details from a re-read (exit status, times, description). A hub that sees a
``seq`` that is not the previous one plus one has missed frames: it sends
``{"op":"snapshot"}``. Unnumbered ``{"t":"ping"}`` frames come after 5 s of silence.

Modules: :mod:`.protocol` (sans-IO codecs and model rules), :mod:`.agent` (threads,
sockets, XML-RPC), :mod:`.main` (the command line).
"""

from __future__ import annotations

__all__: list[str] = []
