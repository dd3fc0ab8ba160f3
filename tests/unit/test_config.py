"""load_config / parse_listen: TOML and Multivisor INI, with FILE:LINE: KEY: MESSAGE errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetwatch.config import (
    DEFAULT_LISTEN,
    Config,
    HistoryConfig,
    HubConfig,
    IcecreamSourceConfig,
    PiwheelsSourceConfig,
    SupervisorSourceConfig,
    UserConfig,
    load_config,
    parse_listen,
)
from fleetwatch.errors import ConfigError
from fleetwatch.types import Secret


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(tmp_path: Path, text: str, name: str = "fleet.toml") -> Config:
    return load_config(write(tmp_path, text, name))


def error(tmp_path: Path, text: str, name: str = "fleet.toml") -> str:
    """The error message with the temporary directory cut off: ``NAME:LINE: KEY: MESSAGE``."""
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == path
    return str(info.value).removeprefix(str(tmp_path) + "/")


SV = '[sources.sv]\nkind = "supervisor"\nurl = "http://h:9001"\n'
INI_SV = "[supervisor:sv]\n"


# ----------------------------------------------------------------------------- TOML


DESIGN_EXAMPLE = """\
[hub]
name = "ACME"                         # shown in every client
listen = "127.0.0.1:22000"

[sources.sv1]
kind = "supervisor"
url = "http://127.0.0.1:9001"         # supervisord's XML-RPC
username = "admin"
password = "s3cr3t-pw"
poll_interval = 1.0
# agent = "sv1.example:9002"

[sources.build]
kind = "icecream"
scheduler = "auto"
netname = "ICECREAM"

[sources.piw]
kind = "piwheels"
status_queue = "ipc:///tmp/piw-status"
control_queue = "ipc:///tmp/piw-control"

[[users]]
name = "alice"
password = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
role = "operator"
sources = ["lid*"]

[[users]]
name = "bob"
password = "hunter2"
"""


def test_design_example(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE)
    assert load_config(path) == Config(
        history=HistoryConfig(),
        path=path,
        hub=HubConfig(name="ACME", listen="127.0.0.1:22000"),
        sources={
            "sv1": SupervisorSourceConfig(
                name="sv1",
                url="http://127.0.0.1:9001",
                username="admin",
                password=Secret("s3cr3t-pw"),
                poll_interval=1.0,
            ),
            "build": IcecreamSourceConfig(name="build", scheduler="auto", netname="ICECREAM"),
            "piw": PiwheelsSourceConfig(
                name="piw",
                status_queue="ipc:///tmp/piw-status",
                control_queue="ipc:///tmp/piw-control",
            ),
        },
        users=(
            UserConfig(
                name="alice",
                password=Secret("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
                role="operator",
                sources=("lid*",),
            ),
            UserConfig(name="bob", password=Secret("hunter2"), role="viewer", sources=("*",)),
        ),
    )


def test_sources_keep_file_order(tmp_path: Path) -> None:
    config = load(tmp_path, DESIGN_EXAMPLE)
    assert list(config.sources) == ["sv1", "build", "piw"]


def test_passwords_are_secrets_and_never_shown(tmp_path: Path) -> None:
    config = load(tmp_path, DESIGN_EXAMPLE)
    source = config.sources["sv1"]
    assert isinstance(source, SupervisorSourceConfig)
    assert isinstance(source.password, Secret)
    assert source.password.reveal() == "s3cr3t-pw"
    assert isinstance(config.users[1].password, Secret)
    assert config.users[1].password.reveal() == "hunter2"
    for text in (repr(config), str(config)):
        assert "s3cr3t" not in text
        assert "hunter2" not in text
        assert "argon2id" not in text


def test_hub_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, SV)
    assert load_config(path) == Config(
        history=HistoryConfig(),
        path=path,
        sources={"sv": SupervisorSourceConfig(name="sv", url="http://h:9001")},
    )
    assert load_config(path).hub == HubConfig(
        name="fleetwatch",
        listen=DEFAULT_LISTEN,
        batch_interval=0.1,
        delta_ring=10_000,
        finished_jobs=1_000,
        root_path="",
    )


def test_source_defaults(tmp_path: Path) -> None:
    text = SV + '[sources.ic]\nkind = "icecream"\n[sources.pw]\nkind = "piwheels"\n'
    config = load(tmp_path, text)
    assert config.sources == {
        "sv": SupervisorSourceConfig(name="sv", url="http://h:9001"),
        "ic": IcecreamSourceConfig(name="ic"),
        "pw": PiwheelsSourceConfig(name="pw"),
    }
    sv = config.sources["sv"]
    assert isinstance(sv, SupervisorSourceConfig)
    assert (sv.poll_interval, sv.timeout, sv.action_timeout, sv.password) == (1.0, None, 60.0, None)
    assert config.sources["ic"] == IcecreamSourceConfig(
        name="ic", scheduler="auto", netname="ICECREAM"
    )


def test_hub_keys(tmp_path: Path) -> None:
    text = (
        '[hub]\nname = "N"\nlisten = "[::1]:8080"\nbatch_interval = 1\n'
        'delta_ring = 5\nfinished_jobs = 0\nroot_path = "fleet/"\n'
    )
    hub = load(tmp_path, text + SV).hub
    assert hub == HubConfig(
        name="N",
        listen="[::1]:8080",
        batch_interval=1.0,
        delta_ring=5,
        finished_jobs=0,
        root_path="/fleet",
    )
    assert type(hub.batch_interval) is float


def test_int_accepted_where_float_expected(tmp_path: Path) -> None:
    text = SV + "poll_interval = 2\ntimeout = 3\naction_timeout = 30\n"
    source = load(tmp_path, text).sources["sv"]
    assert isinstance(source, SupervisorSourceConfig)
    assert (source.poll_interval, source.timeout, source.action_timeout) == (2.0, 3.0, 30.0)
    assert all(type(v) is float for v in (source.poll_interval, source.timeout))


def test_supervisor_endpoints(tmp_path: Path) -> None:
    text = (
        '[sources.a]\nkind = "supervisor"\nurl = "unix:///run/supervisor.sock"\n'
        '[sources.b]\nkind = "supervisor"\nurl = "https://h/RPC2"\n'
        '[sources.c]\nkind = "supervisor"\nagent = "sv1.example:9002"\n'
        '[sources.d]\nkind = "supervisor"\nmultivisor_rpc = "[::1]:9002"\n'
    )
    assert load(tmp_path, text).sources == {
        "a": SupervisorSourceConfig(name="a", url="unix:///run/supervisor.sock"),
        "b": SupervisorSourceConfig(name="b", url="https://h/RPC2"),
        "c": SupervisorSourceConfig(name="c", agent="sv1.example:9002"),
        "d": SupervisorSourceConfig(name="d", multivisor_rpc="[::1]:9002"),
    }


def test_an_agent_may_have_a_url_to_poll_meanwhile_issue9(tmp_path: Path) -> None:
    text = (
        '[sources.e]\nkind = "supervisor"\nagent = "h:9002"\nagent_token = "t0k"\n'
        'url = "http://h:9001"\n'
    )
    (source,) = load(tmp_path, text).sources.values()
    assert isinstance(source, SupervisorSourceConfig)
    assert (source.agent, source.url) == ("h:9002", "http://h:9001")
    assert source.agent_token is not None
    assert source.agent_token.reveal() == "t0k"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", ""), ("/", ""), ("fleet", "/fleet"), ("/fleet/", "/fleet"), ("//a//b/", "/a/b")],
)
def test_root_path_normalised(tmp_path: Path, value: str, expected: str) -> None:
    assert load(tmp_path, f'[hub]\nroot_path = "{value}"\n' + SV).hub.root_path == expected


def test_root_path_bad(tmp_path: Path) -> None:
    assert error(tmp_path, '[hub]\nroot_path = "/a b"\n') == (
        "fleet.toml:2: hub.root_path: expected a URL path such as /fleet, not '/a b'"
    )


def test_users_sources_and_roles(tmp_path: Path) -> None:
    text = (
        '[[users]]\nname = "a"\npassword = "p"\nrole = "admin"\nsources = []\n'
        '[[users]]\nname = "b"\npassword = "p"\nrole = "viewer"\nsources = ["x*", "y"]\n'
    )
    users = load(tmp_path, text + SV).users
    assert [(u.name, u.role, u.sources) for u in users] == [
        ("a", "admin", ()),
        ("b", "viewer", ("x*", "y")),
    ]


def test_users_as_inline_array(tmp_path: Path) -> None:
    text = (
        'users = [\n  {name = "a", password = "p"},\n  {name = "b", password = "p", role = 1},\n]\n'
    )
    assert error(tmp_path, text) == "fleet.toml:3: users[1].role: expected a string, got an integer"


# ------------------------------------------------------------------ TOML errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unknown keys, at their own line
        (
            '[hub]\nname = "x"\nnmae = "y"\n',
            "fleet.toml:3: hub.nmae: unknown key (expected name, listen, batch_interval, "
            "delta_ring, finished_jobs, root_path, allowed_hosts, allowed_origins, "
            "multivisor_listen, token_store, audit_log, secret_key_file, session_lifetime, "
            "tls_cert, tls_key, trusted_proxies, flap_changes or flap_window)",
        ),
        (
            SV + "pol_interval = 1\n",
            "fleet.toml:4: sources.sv.pol_interval: unknown key (expected kind, url, username, "
            "password, poll_interval, timeout, action_timeout, max_answer_size, agent, "
            "agent_token, agent_ca or multivisor_rpc)",
        ),
        (
            '[sources.ic]\nkind = "icecream"\nurl = "x"\n',
            "fleet.toml:3: sources.ic.url: unknown key (expected kind, scheduler or netname)",
        ),
        (
            '[[users]]\nname = "a"\npassword = "p"\nadmin = true\n',
            "fleet.toml:4: users[0].admin: unknown key (expected name, password, role or sources)",
        ),
        # unknown tables and top-level keys
        (
            "[hub]\n\n[web]\nport = 1\n",
            "fleet.toml:3: web: unknown table (expected hub, sources, users or history)",
        ),
        (
            'title = "x"\n',
            "fleet.toml:1: title: unknown key (expected hub, sources, users or history)",
        ),
        (
            '[global]\nname = "x"\n',
            "fleet.toml:1: global: unknown table (expected hub, sources, users or history) "
            "(a Multivisor INI file? name it *.ini)",
        ),
        # wrong types
        ("[hub]\nname = 1\n", "fleet.toml:2: hub.name: expected a string, got an integer"),
        (
            '[hub]\n\nbatch_interval = "1"\n',
            "fleet.toml:3: hub.batch_interval: expected a number of seconds, got a string",
        ),
        (
            SV + "poll_interval = true\n",
            "fleet.toml:4: sources.sv.poll_interval: expected a number of seconds, got a boolean",
        ),
        (
            "[hub]\ndelta_ring = 1.5\n",
            "fleet.toml:2: hub.delta_ring: expected an integer, got a float",
        ),
        (
            "[hub]\ndelta_ring = true\n",
            "fleet.toml:2: hub.delta_ring: expected an integer, got a boolean",
        ),
        ("hub = 1\n", "fleet.toml:1: hub: expected a table, got an integer"),
        ('sources = ["a"]\n', "fleet.toml:1: sources: expected a table, got an array"),
        ('[sources]\nsv = "x"\n', "fleet.toml:2: sources.sv: expected a table, got a string"),
        ("[users]\n", "fleet.toml:1: users: expected [[users]] tables, got a table"),
        ('users = ["a"]\n', "fleet.toml:1: users[0]: expected a table, got a string"),
        (
            '[[users]]\nname = "a"\npassword = "p"\nsources = ["a", 2]\n',
            "fleet.toml:4: users[0].sources[1]: expected a source name pattern, got an integer",
        ),
        (
            '[[users]]\nname = "a"\npassword = "p"\nsources = "a*"\n',
            "fleet.toml:4: users[0].sources: expected an array of source name patterns, "
            "got a string",
        ),
        (
            "[hub]\nname = 1979-05-27T07:32:00Z\n",
            "fleet.toml:2: hub.name: expected a string, got a date-time",
        ),
        # numbers out of range
        (
            SV + "poll_interval = 0\n",
            "fleet.toml:4: sources.sv.poll_interval: must be a positive number of seconds, not 0",
        ),
        (
            SV + "timeout = -1.5\n",
            "fleet.toml:4: sources.sv.timeout: must be a positive number of seconds, not -1.5",
        ),
        (
            SV + "action_timeout = inf\n",
            "fleet.toml:4: sources.sv.action_timeout: must be a positive number of seconds, "
            "not inf",
        ),
        (
            "[hub]\nbatch_interval = nan\n",
            "fleet.toml:2: hub.batch_interval: must be a positive number of seconds, not nan",
        ),
        ("[hub]\ndelta_ring = 0\n", "fleet.toml:2: hub.delta_ring: must be at least 1, not 0"),
        (
            "[hub]\nfinished_jobs = -1\n",
            "fleet.toml:2: hub.finished_jobs: must be at least 0, not -1",
        ),
        # strings
        ('[hub]\nname = " "\n', "fleet.toml:2: hub.name: must not be empty"),
        (
            '[hub]\nlisten = "22000"\n',
            "fleet.toml:2: hub.listen: expected HOST:PORT or [IPV6]:PORT, not '22000'",
        ),
        (
            '[hub]\nlisten = "::1:22000"\n',
            "fleet.toml:2: hub.listen: an IPv6 address needs brackets, as in [::1]:22000, "
            "not '::1:22000'",
        ),
        (
            '[hub]\nlisten = "localhost:http"\n',
            "fleet.toml:2: hub.listen: the port must be a number, not 'http'",
        ),
        # roles and users
        (
            '[[users]]\nname = "a"\npassword = "p"\nrole = "root"\n',
            "fleet.toml:4: users[0].role: must be viewer, operator or admin, not 'root'",
        ),
        ('[[users]]\nname = "a"\n', "fleet.toml:1: users[0].password: required key is missing"),
        (
            '[[users]]\nname = "a"\npassword = "p"\n\n[[users]]\npassword = "p"\n',
            "fleet.toml:5: users[1].name: required key is missing",
        ),
        (
            '[[users]]\nname = "a"\npassword = ""\n',
            "fleet.toml:3: users[0].password: must not be empty",
        ),
        (
            '[[users]]\nname = "a"\npassword = "p"\n[[users]]\nname = "b"\npassword = "p"\n'
            '[[users]]\nname = "a"\npassword = "p"\n',
            "fleet.toml:8: users[2].name: duplicate user name (users[0])",
        ),
        # kinds
        (
            '[sources.sv]\nurl = "http://h"\n',
            "fleet.toml:1: sources.sv.kind: required key is missing "
            "(supervisor, icecream or piwheels)",
        ),
        (
            '[sources.sv]\nkind = "supervisord"\n',
            "fleet.toml:2: sources.sv.kind: must be supervisor, icecream or piwheels, "
            "not 'supervisord'",
        ),
        (
            "[sources.sv]\nkind = 1\n",
            "fleet.toml:2: sources.sv.kind: must be supervisor, icecream or piwheels, "
            "not an integer",
        ),
        # source names
        (
            '[sources."my sv"]\nkind = "icecream"\n',
            'fleet.toml:1: sources."my sv": a source name must match '
            "[A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)",
        ),
        (
            '[sources._x]\nkind = "icecream"\n',
            "fleet.toml:1: sources._x: a source name must match "
            "[A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)",
        ),
        # supervisor endpoints
        (
            '[sources.sv]\nkind = "supervisor"\npoll_interval = 2\n',
            "fleet.toml:1: sources.sv: a supervisor source needs url, agent or multivisor_rpc",
        ),
        (
            SV + 'multivisor_rpc = "h:9002"\n',
            "fleet.toml:4: sources.sv.multivisor_rpc: url is set too: a supervisor source takes "
            "one of url, agent or multivisor_rpc (url may go with agent)",
        ),
        (
            '[sources.sv]\nkind = "supervisor"\nurl = "tcp://h:9001"\n',
            "fleet.toml:3: sources.sv.url: must start with http://, https:// or unix://",
        ),
        (
            '[sources.sv]\nkind = "supervisor"\nurl = "unix://"\n',
            "fleet.toml:3: sources.sv.url: has nothing after unix://",
        ),
        (
            '[sources.sv]\nkind = "supervisor"\nagent = "h"\n',
            "fleet.toml:3: sources.sv.agent: expected HOST:PORT or [IPV6]:PORT, not 'h'",
        ),
        (
            '[sources.sv]\nkind = "supervisor"\nmultivisor_rpc = "h:0"\n',
            "fleet.toml:3: sources.sv.multivisor_rpc: the port must be 1..65535, not 0 in 'h:0'",
        ),
        (
            SV + 'username = "admin"\n',
            "fleet.toml:4: sources.sv.username: needs password as well",
        ),
        (
            SV + 'password = "pw"\n',
            "fleet.toml:4: sources.sv.password: needs username as well",
        ),
        # a malformed allowed_hosts entry is the config's error, not the web app's
        (
            '[hub]\nallowed_hosts = ["fleet.example.com", "a/b"]\n' + SV,
            "fleet.toml:2: hub.allowed_hosts[1]: expected a host name such as "
            "fleet.example.com, not 'a/b'",
        ),
        # icecream and piwheels values
        (
            '[sources.ic]\nkind = "icecream"\nscheduler = "h:x"\n',
            "fleet.toml:3: sources.ic.scheduler: the port must be a number, not 'x'",
        ),
        (
            '[sources.pw]\nkind = "piwheels"\nstatus_queue = "/tmp/q"\n',
            "fleet.toml:3: sources.pw.status_queue: expected a ZeroMQ address such as "
            "ipc:///tmp/piw-status, not '/tmp/q'",
        ),
    ],
)
def test_toml_errors(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == message


def test_allowed_hosts_forms(tmp_path: Path) -> None:
    text = '[hub]\nallowed_hosts = ["*", "*.example.com:8443", "[::1]:80", "Fleet.Lan."]\n' + SV
    hosts = load(tmp_path, text).hub.allowed_hosts
    assert hosts == ("*", "*.example.com:8443", "[::1]:80", "Fleet.Lan.")


def test_icecream_scheduler_forms(tmp_path: Path) -> None:
    text = "".join(
        f'[sources.s{i}]\nkind = "icecream"\nscheduler = "{value}"\n'
        for i, value in enumerate(["auto", "sched.lan", "sched.lan:8765", "[::1]:8765"])
    )
    sources = load(tmp_path, text).sources.values()
    schedulers = [s.scheduler for s in sources if isinstance(s, IcecreamSourceConfig)]
    assert schedulers == ["auto", "sched.lan", "sched.lan:8765", "[::1]:8765"]


def test_error_fields(tmp_path: Path) -> None:
    path = write(tmp_path, SV + "poll_interval = -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.path, info.value.line, info.value.key) == (
        path,
        4,
        "sources.sv.poll_interval",
    )
    assert info.value.message == "must be a positive number of seconds, not -1"


def test_error_line_inline_table_source(tmp_path: Path) -> None:
    text = '[sources]\n\nsv = { kind = "supervisor", url = "http://h", poll_interval = -1 }\n'
    assert error(tmp_path, text) == (
        "fleet.toml:3: sources.sv.poll_interval: must be a positive number of seconds, not -1"
    )


def test_error_line_dotted_key_source(tmp_path: Path) -> None:
    text = '# comment\nsources.sv.kind = "supervisor"\nsources.sv.url = "ftp://h"\n'
    assert error(tmp_path, text) == (
        "fleet.toml:3: sources.sv.url: must start with http://, https:// or unix://"
    )
    text = '[sources]\nsv.kind = "supervisor"\n'
    assert error(tmp_path, text) == (
        "fleet.toml:2: sources.sv: a supervisor source needs url, agent or multivisor_rpc"
    )


def test_error_line_after_multiline_values(tmp_path: Path) -> None:
    # Header-like and key-like lines inside strings and arrays must not fool the line finder.
    text = (
        '[hub]\nname = """\n[sources.sv]\nkind = "x"\n"""\n'
        "[[users]]\nname = 'a'\npassword = '''\n[[users]]\nrole = 1\n'''\n"
        'sources = [\n  "a", # [[users]]\n  "b",\n]\n'
        "[[users]]\nname = 'b' # role = 1\npassword = 'p'\n\nrole = 1\n"
    )
    assert (
        error(tmp_path, text) == "fleet.toml:20: users[1].role: expected a string, got an integer"
    )


def test_error_line_quoted_and_dotted_header(tmp_path: Path) -> None:
    text = '[ sources . "sv.1" ]\nkind = "icecream"\n"netname" = ""\n'
    assert error(tmp_path, text) == 'fleet.toml:3: sources."sv.1".netname: must not be empty'


def test_toml_syntax_error(tmp_path: Path) -> None:
    text = '[hub]\nname = "x"\nlisten = \n'
    assert error(tmp_path, text) == "fleet.toml:3: invalid TOML: Invalid value"


def test_toml_syntax_error_duplicate_key(tmp_path: Path) -> None:
    text = '[hub]\nname = "x"\nname = "y"\n'
    assert error(tmp_path, text) == "fleet.toml:3: invalid TOML: Cannot overwrite a value"


def test_toml_syntax_error_at_end_of_document(tmp_path: Path) -> None:
    text = '[hub]\nname = "x"\nsources = ["a",'
    assert error(tmp_path, text) == "fleet.toml:3: invalid TOML: Invalid value"
    text = '[hub]\nname = """x\n\n'
    assert error(tmp_path, text) == "fleet.toml:3: invalid TOML: Unterminated string"


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such file or directory"
    assert (info.value.line, info.value.key) == (None, None)


def test_unreadable_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: is a directory"
    assert info.value.line is None


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_bytes(b'[hub]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}:2: the file is not UTF-8 text"


@pytest.mark.parametrize(
    "text",
    [
        SV + "password = 12345\nusername = 'u'\n",
        '[sources.sv]\nkind = "supervisor"\nurl = "ftp://u:topsecret@h"\n',
        '[[users]]\nname = "a"\npassword = "topsecret"\nrole = "x"\n',
        '[[users]]\nname = "a"\npassword = "topsecret"\n[[users]]\nname = "a"\npassword = "p"\n',
        '[[users]]\nname = "a"\npassword = "topsecret\n',
    ],
)
def test_password_never_in_error(tmp_path: Path, text: str) -> None:
    message = error(tmp_path, text)
    assert "topsecret" not in message
    assert "12345" not in message


# ------------------------------------------------------------------------------ INI

README_INI = """\
[global]
name=ACME                 ; shown top-left; default "multivisor"
username=admin            ; optional; login is on when BOTH username and password are set
password={SHA}d033e22ae348aeb5660fc2140aec35850c4da997   # hex SHA-1

[supervisor:roadrunner]   ; url defaults to <name>:9002
[supervisor:coyote]
url=:9011                 ; host defaults to the section name
[supervisor:daffy]
url=daffy.acme.org:9007   ; [host][:port]; a "tcp://" prefix is implied
[supervisor:bugs]
url=host
[supervisor:taz]
url = tcp://10.0.0.7:9003
"""


def test_multivisor_readme_example(tmp_path: Path) -> None:
    path = write(tmp_path, README_INI, "multivisor.conf")
    assert load_config(path) == Config(
        history=HistoryConfig(),
        path=path,
        hub=HubConfig(name="ACME"),
        sources={
            "roadrunner": SupervisorSourceConfig(
                name="roadrunner", multivisor_rpc="roadrunner:9002"
            ),
            "coyote": SupervisorSourceConfig(name="coyote", multivisor_rpc="coyote:9011"),
            "daffy": SupervisorSourceConfig(name="daffy", multivisor_rpc="daffy.acme.org:9007"),
            "bugs": SupervisorSourceConfig(name="bugs", multivisor_rpc="host:9002"),
            "taz": SupervisorSourceConfig(name="taz", multivisor_rpc="10.0.0.7:9003"),
        },
        users=(
            UserConfig(
                name="admin",
                password=Secret("{SHA}d033e22ae348aeb5660fc2140aec35850c4da997"),
                role="admin",
                sources=("*",),
            ),
        ),
    )
    assert load_config(path).hub.listen == DEFAULT_LISTEN


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (":9011", "sv:9011"),
        ("host", "host:9002"),
        ("host.example.org:1", "host.example.org:1"),
        ("tcp://host", "host:9002"),
        ("tcp://:9005", "sv:9005"),
        ("TCP://h:9005", "h:9005"),
        ("[::1]:9005", "[::1]:9005"),
        ("[::1]", "[::1]:9002"),
    ],
)
def test_multivisor_url_forms(tmp_path: Path, url: str, expected: str) -> None:
    config = load(tmp_path, f"[supervisor:sv]\nurl={url}\n", "m.ini")
    assert config.sources == {"sv": SupervisorSourceConfig(name="sv", multivisor_rpc=expected)}


def test_multivisor_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisor:a]\n", "m.ini")
    assert config.hub == HubConfig(name="multivisor")
    assert config.users == ()


@pytest.mark.parametrize(
    "global_section",
    ["[global]\nusername=admin\n", "[global]\npassword=x\n", "[global]\nusername=\npassword=x\n"],
)
def test_multivisor_login_needs_both(tmp_path: Path, global_section: str) -> None:
    assert load(tmp_path, global_section + INI_SV, "m.ini").users == ()


def test_multivisor_plain_password(tmp_path: Path) -> None:
    text = "[global]\nusername = u\npassword = p#q ; comment\n" + INI_SV
    users = load(tmp_path, text, "m.ini").users
    assert users == (UserConfig(name="u", password=Secret("p#q"), role="admin"),)
    assert "p#q" not in repr(users)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[global]\nname=x\nbind=0.0.0.0:22000\n",
            "m.ini:3: global.bind: unknown key (expected name, username or password)",
        ),
        (
            "[global]\n[supervisor:coyote]\n\nURL=:9011\nhost=h\n",
            "m.ini:5: supervisor:coyote.host: unknown key (expected url)",
        ),
        (
            "[global]\n[web]\nport=1\n",
            "m.ini:2: web: unknown section (expected [global] or [supervisor:NAME])",
        ),
        (
            "[DEFAULT]\nurl=h\n[supervisor:a]\n",
            "m.ini:1: DEFAULT: unknown section (expected [global] or [supervisor:NAME])",
        ),
        (
            "[supervisor:coyote]\nurl=http://coyote:9011\n",
            "m.ini:2: supervisor:coyote.url: expected [tcp://][HOST][:PORT], not http://",
        ),
        (
            "[supervisor:coyote]\nurl=coyote:x\n",
            "m.ini:2: supervisor:coyote.url: expected [tcp://][HOST][:PORT], not 'coyote:x'",
        ),
        (
            "[supervisor:coyote]\nurl=:\n",
            "m.ini:2: supervisor:coyote.url: expected [tcp://][HOST][:PORT], not ':'",
        ),
        (
            "[supervisor:coyote]\nurl=:70000\n",
            "m.ini:2: supervisor:coyote.url: the port must be 1..65535, not 70000",
        ),
        (
            "[supervisor:my sv]\n",
            "m.ini:1: supervisor:my sv: a supervisor name must match "
            "[A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)",
        ),
        (
            "[supervisor:]\n",
            "m.ini:1: supervisor:: a supervisor name must match "
            "[A-Za-z0-9][A-Za-z0-9_.-]* (it is an id in URLs)",
        ),
        ("[global]\nname=\n", "m.ini:2: global.name: must not be empty"),
        (
            "  [global]\n  name = a\n    bind = b\n; c\n  bind = x\n",
            "m.ini:5: global.bind: unknown key (expected name, username or password)",
        ),
        ("[supervisor:a]\n[supervisor:a]\n", "m.ini:2: supervisor:a: duplicate section"),
        ("[global]\nname=a\nname=b\n", "m.ini:3: global.name: duplicate key"),
        ("name=a\n", "m.ini:1: a key before any section header such as [global]"),
        (
            "[global]\nname=a\npassword topsecret\n",
            "m.ini:3: cannot parse this line: expected KEY = VALUE or a [section] header",
        ),
    ],
)
def test_ini_errors(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text, "m.ini") == message


# -------------------------------------------------------------------- format detection


@pytest.mark.parametrize("name", ["m.ini", "m.conf", "m.cfg", "M.INI"])
def test_ini_by_extension(tmp_path: Path, name: str) -> None:
    # Valid TOML too, but the extension says INI: the quotes are part of the name.
    assert load(tmp_path, '[global]\nname = "x"\n' + INI_SV, name).hub.name == '"x"'


@pytest.mark.parametrize("name", ["multivisor", "fleet.txt"])
def test_ini_by_content(tmp_path: Path, name: str) -> None:
    config = load(tmp_path, README_INI, name)
    assert config.hub.name == "ACME"
    assert len(config.sources) == 5


def test_ini_by_content_supervisor_header_only(tmp_path: Path) -> None:
    config = load(tmp_path, "[supervisor:a]\nurl=:9011\n", "fleet")
    assert config.sources == {"a": SupervisorSourceConfig(name="a", multivisor_rpc="a:9011")}


def test_toml_without_extension(tmp_path: Path) -> None:
    assert load(tmp_path, DESIGN_EXAMPLE, "fleet").hub.name == "ACME"


def test_toml_extension_never_ini(tmp_path: Path) -> None:
    assert error(tmp_path, README_INI, "multivisor.toml") == (
        "multivisor.toml:2: invalid TOML: Invalid value"
    )


def test_no_extension_bad_toml_without_ini_headers(tmp_path: Path) -> None:
    assert error(tmp_path, "[hub]\nname=ACME\n", "fleet") == "fleet:2: invalid TOML: Invalid value"


# ------------------------------------------------------------------------ parse_listen


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:22000", ("127.0.0.1", 22000)),
        ("localhost:80", ("localhost", 80)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:65535", ("::", 65535)),
        ("host.example.org:1", ("host.example.org", 1)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("22000", "expected HOST:PORT or [IPV6]:PORT, not '22000'"),
        (":22000", "expected HOST:PORT or [IPV6]:PORT, not ':22000'"),
        ("host:", "the port must be a number, not ''"),
        ("host:-1", "the port must be a number, not '-1'"),
        ("host: 80", "the port must be a number, not ' 80'"),
        ("host:٣", "the port must be a number, not '٣'"),
        ("host:65536", "the port must be 0..65535, not 65536"),
        ("::1:80", "an IPv6 address needs brackets, as in [::1]:22000, not '::1:80'"),
        ("[::1:80", "an IPv6 address needs brackets, as in [::1]:22000, not '[::1:80'"),
        ("[]:80", "expected HOST:PORT or [IPV6]:PORT, not '[]:80'"),
        ("a b:80", "expected HOST:PORT or [IPV6]:PORT, not 'a b:80'"),
        ("http://h:80", "expected HOST:PORT or [IPV6]:PORT, not 'http://h:80'"),
    ],
)
def test_parse_listen_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_listen(value)


# ------------------------------------------- configs that should fail (issue 8, item 9)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        # A hub watching nothing is a mistake, not a configuration.
        ("fleet.toml", "", "fleet.toml: no sources: nothing to watch (add a [sources.NAME] table)"),
        (
            "fleet.toml",
            '[hub]\nname = "ACME"\n',
            "fleet.toml: no sources: nothing to watch (add a [sources.NAME] table)",
        ),
        (
            "fleet.toml",
            "[hub]\n\n[sources]\n",
            "fleet.toml:3: sources: no source in it: nothing to watch",
        ),
        ("m.ini", "", "m.ini: no [supervisor:NAME] section: nothing to watch"),
        ("m.ini", "[global]\nname=ACME\n", "m.ini: no [supervisor:NAME] section: nothing to watch"),
        # An empty url= is not Multivisor's default: leaving the key out is.
        (
            "m.ini",
            "[supervisor:a]\nurl=\n",
            "m.ini:2: supervisor:a.url: must not be empty (leave url out for Multivisor's "
            "default a:9002)",
        ),
        (
            "m.ini",
            "[supervisor:a]\nurl =   ; nothing\n",
            "m.ini:2: supervisor:a.url: must not be empty (leave url out for Multivisor's "
            "default a:9002)",
        ),
        # A broken section header, not "global.[supervisor: unknown key".
        (
            "m.ini",
            "[global]\nname=x\n[supervisor:a\nurl=:9002\n",
            "m.ini:3: a section header without its closing ]",
        ),
        ("m.ini", "[global\nname=x\n", "m.ini:1: a section header without its closing ]"),
        (
            "m.ini",
            "[supervisor:a] url=:9002\n",
            "m.ini:1: text after the section header's closing ]",
        ),
    ],
)
def test_config_without_sources_or_with_broken_ini_fails_issue8_bad_configs(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    assert error(tmp_path, text, name) == message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999", "the port must be 1..65535, not 99999"),
        ("http://127.0.0.1:0", "the port must be 1..65535, not 0"),
        ("http://h:9001x", "the port must be a number"),
        ("http://h:", "the port must be a number"),
        ("http://u:topsecret@h:70000", "the port must be 1..65535, not 70000"),
        ("http://:9001", "has no host after http://"),
        ("https://u:topsecret@:9001", "has no host after https://"),
        ("http://[::1:9001", "has a malformed host (an IPv6 address goes in [brackets])"),
        ("http://[::1]:65536", "the port must be 1..65535, not 65536"),
        ("http://my host:9001", "must not contain spaces or control characters"),
        (
            "http://h:9001/RPC2?x=1",
            "must not have a ?query or #fragment (supervisord ignores them)",
        ),
        ("http://h:9001/#top", "must not have a ?query or #fragment (supervisord ignores them)"),
        ("http://h:9001?", "must not have a ?query or #fragment (supervisord ignores them)"),
    ],
)
def test_bad_supervisor_url_names_file_line_key_issue8_bad_configs(
    tmp_path: Path, url: str, message: str
) -> None:
    text = f'[sources.sv]\nkind = "supervisor"\nurl = "{url}"\n'
    got = error(tmp_path, text)
    assert got == f"fleet.toml:3: sources.sv.url: {message}"
    assert "topsecret" not in got


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:65535",
        "http://h",
        "https://h/RPC2",
        "http://u:p@h:9001",
        "http://[::1]:9001",
        "http://[fe80::1]",
        "unix:///run/supervisor.sock",
    ],
)
def test_good_supervisor_urls_still_load_issue8_bad_configs(tmp_path: Path, url: str) -> None:
    text = f'[sources.sv]\nkind = "supervisor"\nurl = "{url}"\n'
    assert load(tmp_path, text).sources == {"sv": SupervisorSourceConfig(name="sv", url=url)}


def test_credentials_in_url_and_username_conflict_issue8_bad_configs(tmp_path: Path) -> None:
    text = SV.replace("http://h:9001", "http://u:topsecret@h:9001")
    text += 'username = "v"\npassword = "w"\n'
    assert error(tmp_path, text) == (
        "fleet.toml:4: sources.sv.username: the url carries a user name already: "
        "give it in one place"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("agent", "h:99999", "the port must be 1..65535, not 99999 in 'h:99999'"),
        ("multivisor_rpc", "h:0", "the port must be 1..65535, not 0 in 'h:0'"),
    ],
)
def test_bad_agent_addresses_issue8_bad_configs(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    text = f'[sources.sv]\nkind = "supervisor"\n{key} = "{value}"\n'
    assert error(tmp_path, text) == f"fleet.toml:3: sources.sv.{key}: {message}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "tcp://h:99999",
            "expected tcp://HOST:PORT: the port must be 1..65535, not 99999 in 'h:99999'",
        ),
        ("tcp://h:0", "expected tcp://HOST:PORT: the port must be 1..65535, not 0 in 'h:0'"),
        ("tcp://h", "expected tcp://HOST:PORT: expected HOST:PORT or [IPV6]:PORT, not 'h'"),
    ],
)
def test_bad_zeromq_tcp_addresses_issue8_bad_configs(
    tmp_path: Path, value: str, message: str
) -> None:
    text = f'[sources.pw]\nkind = "piwheels"\nstatus_queue = "{value}"\n'
    assert error(tmp_path, text) == f"fleet.toml:3: sources.pw.status_queue: {message}"


def test_zeromq_tcp_address_with_a_port_loads_issue8_bad_configs(tmp_path: Path) -> None:
    text = '[sources.pw]\nkind = "piwheels"\ncontrol_queue = "tcp://[::1]:5555"\n'
    source = load(tmp_path, text).sources["pw"]
    assert isinstance(source, PiwheelsSourceConfig)
    assert source.control_queue == "tcp://[::1]:5555"


def test_piwheels_timeout_issue10(tmp_path: Path) -> None:
    text = '[sources.pw]\nkind = "piwheels"\ntimeout = 5\n'
    source = load(tmp_path, text).sources["pw"]
    assert isinstance(source, PiwheelsSourceConfig)
    assert source.timeout == 5.0
    assert PiwheelsSourceConfig(name="x").timeout == 30.0
    bad = '[sources.pw]\nkind = "piwheels"\ntimeout = "soon"\n'
    assert error(tmp_path, bad) == (
        "fleet.toml:3: sources.pw.timeout: expected a number of seconds, got a string"
    )
