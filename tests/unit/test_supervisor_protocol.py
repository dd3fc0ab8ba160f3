"""supervisord's XML-RPC codec: calls, responses, faults, multicall, validation, garbage."""

from __future__ import annotations

import contextlib
import xmlrpc.client
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleetwatch.errors import RemoteProtocolError, SourceError
from fleetwatch.sources.supervisor.protocol import (
    Fault,
    Faults,
    GroupResult,
    ProcessInfo,
    ProcessStates,
    ResponseDecoder,
    Signature,
    decode_multicall,
    decode_response,
    encode_call,
    encode_multicall,
    member_pieces,
    struct_key,
    without_volatile,
)


def response(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode("utf-8")


def fault_response(code: int, text: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True).encode()


INFO: dict[str, Any] = {
    "name": "web",
    "group": "apps",
    "start": 1700000000,
    "stop": 0,
    "now": 1700000100,
    "state": 20,
    "statename": "RUNNING",
    "spawnerr": "",
    "exitstatus": 0,
    "logfile": "/tmp/web.log",
    "stdout_logfile": "/tmp/web.log",
    "stderr_logfile": "/tmp/web.err",
    "pid": 4242,
    "description": "pid 4242, uptime 0:01:40",
}


# -- calls -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("supervisor.getState", ()),
        ("supervisor.startProcess", ("apps:web", True)),
        ("supervisor.readProcessStdoutLog", ("apps:web", 0, 4096)),
        ("supervisor.signalProcess", ("ü:✓", "HUP")),
    ],
)
def test_encode_call_round_trips(method: str, params: tuple[Any, ...]) -> None:
    body = encode_call(method, *params)
    assert isinstance(body, bytes)
    got, name = xmlrpc.client.loads(body)
    assert (name, got) == (method, params)


def test_encode_call_refuses_none() -> None:
    with pytest.raises(TypeError):
        encode_call("supervisor.getState", None)


def test_encode_multicall() -> None:
    body = encode_multicall([("supervisor.getState", ()), ("supervisor.getProcessInfo", ["a:b"])])
    (calls,), name = xmlrpc.client.loads(body)
    assert name == "system.multicall"
    assert calls == [
        {"methodName": "supervisor.getState", "params": []},
        {"methodName": "supervisor.getProcessInfo", "params": ["a:b"]},
    ]


# -- responses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        True,
        0,
        -1,
        "ünïcødé ✓ 😀",
        "",
        [],
        ["", 1234, False],
        {"statecode": 1, "statename": "RUNNING"},
        [INFO, INFO],
        [[["added"], [], ["gone"]]],
        1.5,
        b"raw",
    ],
)
def test_decode_response_round_trips(value: Any) -> None:
    assert decode_response(response(value)) == value


def test_decode_response_wants_exactly_one_value() -> None:
    one = "<param><value><int>1</int></value></param>"
    body = f"<methodResponse><params>{one}{one}</params></methodResponse>".encode()
    with pytest.raises(RemoteProtocolError, match="2 values"):
        decode_response(body)
    call = xmlrpc.client.dumps((), "supervisor.getState").encode()
    with pytest.raises(RemoteProtocolError, match="0 values"):
        decode_response(call)


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "wire", "name", "text"),
    [
        (10, "BAD_NAME: foo", "BAD_NAME", "BAD_NAME: foo"),
        (60, "ALREADY_STARTED: apps:web", "ALREADY_STARTED", "ALREADY_STARTED: apps:web"),
        (70, "NOT_RUNNING", "NOT_RUNNING", "NOT_RUNNING"),
        (50, "SPAWN_ERROR: apps:web", "SPAWN_ERROR", "SPAWN_ERROR: apps:web"),
        (20, "foo.log", "NO_FILE", "NO_FILE: foo.log"),  # a bare text gets the name
        (30, "", "FAILED", "FAILED"),
        (
            92,
            "CANT_REREAD: Invalid user name nobody in section 'program:x' (file: '/etc/x.conf')",
            "CANT_REREAD",
            "CANT_REREAD: Invalid user name nobody in section 'program:x' (file: '/etc/x.conf')",
        ),
        (1234, "weird", "FAULT_1234", "FAULT_1234: weird"),
    ],
)
def test_faults_carry_code_name_and_text(code: int, wire: str, name: str, text: str) -> None:
    with pytest.raises(Fault) as info:
        decode_response(fault_response(code, wire))
    f = info.value
    assert isinstance(f, SourceError)
    assert (f.code, f.name, str(f)) == (code, name, text)
    assert str(f).count(name) == 1, "the fault name is not repeated"
    assert f.text == wire


def test_fault_names_are_supervisords() -> None:
    assert Faults(60).name == "ALREADY_STARTED"
    assert int(Faults.SUCCESS) == 80
    assert ProcessStates(200).name == "FATAL"
    assert int(ProcessStates.RUNNING) == 20


# -- multicall -------------------------------------------------------------------------------------


def test_decode_multicall_values_are_bare_and_faults_are_structs() -> None:
    # What supervisord 4.3.0 really answers: each value as it is, each fault a struct.
    body = response(
        [
            "4.3.0",
            {"statecode": 1, "statename": "RUNNING"},
            [INFO],
            {"faultCode": 10, "faultString": "BAD_NAME: nope"},
            [],
            True,
        ]
    )
    got = decode_multicall(decode_response(body), 6)
    assert got[0] == "4.3.0"
    assert got[1] == {"statecode": 1, "statename": "RUNNING"}
    assert got[2] == [INFO]
    assert isinstance(got[3], Fault)
    assert (got[3].code, got[3].name, str(got[3])) == (10, "BAD_NAME", "BAD_NAME: nope")
    assert got[4] == []  # a value that happens to be an array is not unwrapped
    assert got[5] is True


def test_decode_multicall_fault_without_a_string() -> None:
    (f,) = decode_multicall([{"faultCode": 70}], 1)
    assert isinstance(f, Fault)
    assert str(f) == "NOT_RUNNING"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nope", 1),
        ({"faultCode": 1, "faultString": "x"}, 1),
        ([1, 2], 3),
        ([1, 2], 1),
        (None, 0),
    ],
)
def test_decode_multicall_wrong_shape(value: Any, expected: int) -> None:
    with pytest.raises(RemoteProtocolError, match="multicall"):
        decode_multicall(value, expected)


@pytest.mark.parametrize("code", ["x", None, [], 1.5j])
def test_decode_multicall_garbage_fault_code(code: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_multicall([{"faultCode": code, "faultString": "boom"}], 1)


# -- garbage ---------------------------------------------------------------------------------------

GARBAGE = [
    b"",
    b"   ",
    b"<?xml version='1.0'?>",
    response([1, 2, 3])[:-20],  # truncated
    response({"a": 1})[:40],
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>",
    b"Internal Server Error",
    b"\x00\xff\xfe\x80garbage\x01",
    b"<methodResponse><params><param><value><int>abc</int></value></param></params></methodResponse>",
    b"<methodResponse><params><param><value><double>x</double></value></param></params>"
    b"</methodResponse>",
    b"<methodResponse><params><param><value><dateTime.iso8601>zz</dateTime.iso8601></value>"
    b"</param></params></methodResponse>",
    b"<methodResponse><params><param><value><bigdecimal>zz</bigdecimal></value></param></params>"
    b"</methodResponse>",
    # a struct with a value but no name
    b"<methodResponse><params><param><value><struct><value><i4>1</i4></value></struct></value>"
    b"</param></params></methodResponse>",
    # a struct keyed by an array
    b"<methodResponse><params><param><value><struct><value><array><data/></array></value>"
    b"<value>1</value></struct></value></param></params></methodResponse>",
    # an empty fault
    b"<methodResponse><fault></fault></methodResponse>",
    # faults that are not {faultCode: int, faultString}
    b"<methodResponse><fault><value><int>1</int></value></fault></methodResponse>",
    b"<methodResponse><fault><value><struct><member><name>x</name><value>1</value></member>"
    b"</struct></value></fault></methodResponse>",
    fault_response(10, "x").replace(b"<int>10</int>", b"<string>ten</string>"),
    fault_response(10, "x").replace(b"<int>10</int>", b"<array><data/></array>"),
    b'<?xml version="1.0" encoding="no-such-encoding"?><methodResponse/>',
    b"<methodResponse><params><param><value>x</value></param>",  # unclosed
    b"<a><b></a></b>",
]


@pytest.mark.parametrize("body", GARBAGE)
def test_garbage_is_a_remote_protocol_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_response(body)
    assert not isinstance(info.value, Fault)


def test_garbage_error_shows_the_start_of_the_body() -> None:
    with pytest.raises(RemoteProtocolError, match="Internal Server Error"):
        decode_response(b"<html><body>Internal Server Error</body></html>")


def _decode_or_protocol_error(body: bytes) -> None:
    # a value, a RemoteProtocolError or a Fault (a well-formed answer); anything else is a bug
    with contextlib.suppress(RemoteProtocolError, Fault):
        decode_response(body)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
@example(b"<methodResponse><fault></fault></methodResponse>")
def test_fuzz_random_bytes(body: bytes) -> None:
    _decode_or_protocol_error(body)


_TAGS = [
    "methodResponse",
    "params",
    "param",
    "value",
    "struct",
    "member",
    "name",
    "array",
    "data",
    "fault",
    "int",
    "i4",
    "i8",
    "boolean",
    "string",
    "double",
    "base64",
    "dateTime.iso8601",
    "nil",
    "bigdecimal",
    "biginteger",
    "float",
]
_TEXT = ["", "1", "0", "-7", "x", "faultCode", "faultString", "2.5", "20240101T00:00:00", "QUJD"]


@st.composite
def _xmlrpc_like(draw: st.DrawFn, depth: int = 0) -> str:
    """Random well-nested documents built from XML-RPC's own tags (reaches the unmarshaller)."""
    parts = []
    for _ in range(draw(st.integers(0, 3 if depth < 4 else 0))):
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(_TEXT)))
        else:
            tag = draw(st.sampled_from(_TAGS))
            parts.append(f"<{tag}>{draw(_xmlrpc_like(depth + 1))}</{tag}>")
    return "".join(parts)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["params", "fault", "params><param", "fault><value"]), _xmlrpc_like())
def test_fuzz_xmlrpc_shaped_documents(head: str, inner: str) -> None:
    opening = "".join(f"<{t}>" for t in head.split("><"))
    closing = "".join(f"</{t}>" for t in reversed(head.split("><")))
    body = f"<methodResponse>{opening}{inner}{closing}</methodResponse>".encode()
    _decode_or_protocol_error(body)


# -- ProcessInfo -----------------------------------------------------------------------------------


def test_process_info_from_struct() -> None:
    info = ProcessInfo.from_struct(INFO)
    assert info.namespec == "apps:web"
    assert (info.pid, info.state, info.statename, info.start) == (4242, 20, "RUNNING", 1700000000)
    assert info.stdout_logfile == "/tmp/web.log"
    assert info.stderr_logfile == "/tmp/web.err"
    assert ProcessInfo.list_from([INFO, INFO]) == [info, info]
    assert ProcessInfo.list_from([]) == []


def test_process_info_falls_back_to_logfile() -> None:
    d = {k: v for k, v in INFO.items() if k not in ("stdout_logfile", "stderr_logfile")}
    info = ProcessInfo.from_struct(d)
    assert info.stdout_logfile == "/tmp/web.log"
    assert info.stderr_logfile == ""


REQUIRED = [
    "name",
    "group",
    "start",
    "stop",
    "now",
    "state",
    "statename",
    "spawnerr",
    "exitstatus",
    "pid",
    "description",
]


@pytest.mark.parametrize("field", REQUIRED)
def test_process_info_missing_field_is_named(field: str) -> None:
    d = dict(INFO)
    del d[field]
    with pytest.raises(RemoteProtocolError, match=f"'{field}'"):
        ProcessInfo.from_struct(d)


@pytest.mark.parametrize("field", REQUIRED)
def test_process_info_wrong_type_is_named(field: str) -> None:
    d = dict(INFO)
    d[field] = [] if isinstance(INFO[field], str) else "12"
    with pytest.raises(RemoteProtocolError, match=f"'{field}'") as info:
        ProcessInfo.from_struct(d)
    assert ("not str" if isinstance(INFO[field], str) else "not int") in str(info.value)


@pytest.mark.parametrize("field", ["pid", "state", "start"])
def test_process_info_bool_is_not_an_int(field: str) -> None:
    with pytest.raises(RemoteProtocolError, match=field):
        ProcessInfo.from_struct({**INFO, field: True})


@pytest.mark.parametrize("value", [None, "x", 3, [INFO]])
def test_process_info_not_a_struct(value: Any) -> None:
    with pytest.raises(RemoteProtocolError, match="not a struct"):
        ProcessInfo.from_struct(value)


@pytest.mark.parametrize("value", [None, INFO, "x"])
def test_process_info_list_not_an_array(value: Any) -> None:
    with pytest.raises(RemoteProtocolError, match="not an array"):
        ProcessInfo.list_from(value)


# -- GroupResult -----------------------------------------------------------------------------------


def test_group_results() -> None:
    value = [
        {"name": "a", "group": "g", "status": 80, "description": "OK"},
        {"name": "b", "group": "g", "status": 60, "description": "ALREADY_STARTED"},
        {"name": "c", "group": "g", "status": 50, "description": "SPAWN_ERROR"},
    ]
    results = GroupResult.list_from(decode_response(response(value)))
    assert [r.ok for r in results] == [True, False, False]
    assert results[0] == GroupResult("a", "g", 80, "OK")
    assert GroupResult.list_from([]) == []
    assert GroupResult.list_from([{}]) == [GroupResult("", "", 0, "")]


@pytest.mark.parametrize(
    "value",
    [None, "x", {"name": "a"}, [1], ["x"], [{"status": "eighty"}], [{"status": []}]],
)
def test_group_results_garbage(value: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        GroupResult.list_from(value)


# -- big answers, a piece at a time (issue #8 item 3) ----------------------------------------------


def _fed(body: bytes, step: int) -> Any:
    decoder = ResponseDecoder()
    for i in range(0, len(body), step):
        decoder.feed(body[i : i + step])
    return decoder.close()


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_a_response_fed_in_pieces_decodes_as_whole_issue8_big_daemon(step: int) -> None:
    body = response([{"statecode": 1}, [INFO, dict(INFO, name="api", pid=7)]])
    assert _fed(body, step) == decode_response(body)
    with pytest.raises(Fault, match="BAD_NAME"):
        _fed(fault_response(10, "BAD_NAME: x"), step)
    garbage = b"<?xml version='1.0'?><methodResponse><params><param><value><int>x"
    with pytest.raises(RemoteProtocolError) as whole:
        decode_response(garbage)
    with pytest.raises(RemoteProtocolError) as pieces:
        _fed(garbage, step)
    assert str(pieces.value) == str(whole.value)
    assert str(whole.value).startswith("not an XML-RPC response")


def _members(info: dict[str, Any]) -> bytes:
    body = response(info)
    return body[body.index(b"<struct>\n") + 9 : body.rindex(b"</struct>")]


def test_a_struct_key_ignores_only_the_volatile_members_issue8_big_daemon() -> None:
    key = struct_key(_members(INFO))
    assert struct_key(_members(dict(INFO, now=1, description="pid 4242, uptime 9:00:00"))) == key
    for change in ({"pid": 1}, {"state": 0}, {"name": "now"}, {"spawnerr": "description"}):
        assert struct_key(_members(dict(INFO, **change))) != key, change


def test_a_signature_in_pieces_ignores_only_the_volatile_members_issue8_big_daemon() -> None:
    infos = [dict(INFO, name=f"p{i}", pid=i) for i in range(300)]

    def signed(value: Any, size: int) -> bytes:
        signature = Signature()
        for piece in member_pieces(response(value), size):
            signature.update(piece)
        return signature.digest()

    body = response(infos)
    assert b"".join(member_pieces(body, 1000)) == body
    first = signed(infos, 1000)
    assert signed(infos, 50) == signed(infos, 10**9) == first
    moved = [dict(i, now=i["now"] + 5, description="pid x, uptime 0:00:05") for i in infos]
    assert signed(moved, 1000) == first
    assert without_volatile(response(moved)) == without_volatile(body)
    changed = [dict(i, state=0) if i["pid"] == 150 else i for i in infos]
    assert signed(changed, 1000) != first
