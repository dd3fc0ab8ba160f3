"""pyicemon's message API over fleetwatch's icecream codec.

pyicemon documented two calls, and both work here::

    from fleetwatch.icecream import messages

    m = messages.unpack(wire_data)  # exactly one message: 4-byte type word + body
    data = m.pack()                 # type word + body again: unpack(m.pack()) == m

The message classes are the codec's immutable ``NamedTuple``\\s
(:mod:`fleetwatch.sources.icecream.protocol`), importable under pyicemon's names:

=======================  ==========================  ==================================
pyicemon name            codec class                 fields (positional order)
=======================  ==========================  ==================================
``LoginMessage``         :class:`MonLogin`           (none)
``StatsMessage``         :class:`MonStats`           hostid, statmsg
``GetCSMessage``         :class:`MonGetCS`           filename, lang, job_id, client_id
``JobBeginMessage``      :class:`MonJobBegin`        job_id, stime, hostid
``JobDoneMessage``       :class:`MonJobDone`         job_id, exitcode, real_msec, ... flags
                                                     [, client_count]
``LocalJobBeginMessage`` :class:`MonLocalJobBegin`   hostid, job_id, stime, file
``LocalJobDoneMessage``  :class:`JobLocalDone`       job_id
``EndMessage``           :class:`End`                (none)
=======================  ==========================  ==================================

pyicemon's attribute names are there too (``host_id``, ``data``, ``time``, ``rc``,
``real_ms``, ``client_id``, ``filename``, ...). Where this differs from pyicemon:

* ``pack()`` returns the **type word and body**, which is what ``unpack()`` reads;
  pyicemon's returned the body alone, so its ``unpack(m.pack())`` did not work.
  Both take the protocol ``version`` (default 44), since MON_GET_CS (< 29) and
  MON_JOB_DONE (>= 39) are coded differently by version.
* An unknown type gives an :class:`UnknownMessage` (its ``type`` and raw
  ``body``) rather than ``None`` and a warning; malformed bytes raise
  :class:`~fleetwatch.errors.RemoteProtocolError`.
* Strings are ``str`` (bytes that are not UTF-8 survive as surrogate escapes).
  ``StatsMessage`` keeps the raw ``statmsg`` text; ``.data`` is the parsed dict,
  each line split at its *first* colon.
* ``LocalJobBeginMessage`` takes its fields in wire order ``(hostid, job_id,
  stime, file)``, not pyicemon's ``(job_id, client_id, time, filename)``: pass
  them by name when in doubt.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from fleetwatch.sources.icecream.protocol import (
    MAX_VERSION,
    End,
    JobLocalDone,
    Message,
    MonGetCS,
    MonJobBegin,
    MonJobDone,
    MonLocalJobBegin,
    MonLogin,
    MonStats,
    MsgType,
    UnknownMessage,
    unpack_message,
)

__all__ = [
    "EndMessage",
    "GetCSMessage",
    "JobBeginMessage",
    "JobDoneMessage",
    "LocalJobBeginMessage",
    "LocalJobDoneMessage",
    "LoginMessage",
    "Message",
    "StatsMessage",
    "UnknownMessage",
    "msg_types",
    "unpack",
]

LoginMessage: TypeAlias = MonLogin
StatsMessage: TypeAlias = MonStats
GetCSMessage: TypeAlias = MonGetCS
JobBeginMessage: TypeAlias = MonJobBegin
JobDoneMessage: TypeAlias = MonJobDone
LocalJobBeginMessage: TypeAlias = MonLocalJobBegin
LocalJobDoneMessage: TypeAlias = JobLocalDone
EndMessage: TypeAlias = End

msg_types: Final[dict[int, type[Message]]] = {
    MsgType.MON_LOGIN: MonLogin,
    MsgType.MON_STATS: MonStats,
    MsgType.MON_LOCAL_JOB_BEGIN: MonLocalJobBegin,
    MsgType.JOB_LOCAL_DONE: JobLocalDone,
    MsgType.MON_GET_CS: MonGetCS,
    MsgType.MON_JOB_BEGIN: MonJobBegin,
    MsgType.MON_JOB_DONE: MonJobDone,
    MsgType.END: End,
}
"""Type id -> message class, as pyicemon's table (the codec also reads 71 and 77 as aliases)."""


def unpack(data: bytes, version: int = MAX_VERSION) -> Message:
    """Decode exactly one message: its 4-byte big-endian type word, then its body.

    ``version`` is the negotiated protocol version the bytes were coded for.
    Unknown types come back as :class:`UnknownMessage`; bytes that do not decode
    exactly raise :class:`~fleetwatch.errors.RemoteProtocolError`.
    """
    return unpack_message(data, version)
