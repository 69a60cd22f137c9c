"""Every error path of `python -m p2p` a user can hit: one JSON line on stdout, exit status 1, and the
line says what failed and why. Argument errors run in-process (fast); the rest as subprocesses."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from p2p import cli
from p2p.identity import PeerId, load_private_key_file

REPO = Path(__file__).resolve().parents[2]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr().out
    return code, out.splitlines()


def run_p2p(*argv: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "p2p", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--log-level", "chatty", "serve"],
         "argument --log-level: unknown log level 'chatty': use one of debug, info, warning, error, "
         "critical (see python -m p2p --help)"),
        (["ping"], "the following arguments are required: MULTIADDR (see python -m p2p ping --help)"),
        (["ping", "/ip4/127.0.0.1/tcp/1", "--count", "x"],
         "argument --count: 'x' is not a whole number (see python -m p2p ping --help)"),
        (["ping", "/ip4/127.0.0.1/tcp/1", "--count", "0"],
         "argument --count: '0' must be at least 1 (see python -m p2p ping --help)"),
        (["echo", "/ip4/127.0.0.1/tcp/1", "--timeout", "-1"],
         "argument --timeout: '-1' must be a number of seconds > 0 (see python -m p2p echo --help)"),
        (["serve", "--key-type", "dsa"],
         "argument --key-type: invalid choice: 'dsa' (choose from 'ed25519', 'secp256k1', 'ecdsa', 'rsa')"
         " (see python -m p2p serve --help)"),
        (["bogus"], "argument COMMAND: invalid choice: 'bogus' (choose from 'serve', 'ping', 'echo', "
                    "'identify', 'keygen') (see python -m p2p --help)"),
        (["keygen"], "the following arguments are required: --out (see python -m p2p keygen --help)"),
        (["serve", "--key-type", "rsa", "--key-file", "k"],
         "argument --key-file: not allowed with argument --key-type (see python -m p2p serve --help)"),
    ],
)
def test_bad_arguments_are_one_json_line_and_exit_1(capsys, argv, line) -> None:
    assert run_main(capsys, *argv) == (1, [json.dumps({"error": line})])


def assert_help_everywhere(parser) -> None:
    commands = next(a for a in parser._actions if a.dest == "command")
    assert all(c.help for c in commands._choices_actions)  # each command's line in the list
    for p in [parser, *commands.choices.values()]:
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"


def test_every_option_has_help_text() -> None:
    assert_help_everywhere(cli.build_parser())


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    out = tmp_path / "key"
    code, lines = run_main(capsys, "keygen", "--out", str(out))
    assert code == 0
    first = json.loads(lines[0])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before = out.read_bytes()
    assert run_main(capsys, "keygen", "--out", str(out)) == (1, [json.dumps(
        {"error": f"--out {out}: the file exists; not replacing a key without --force"})])
    assert out.read_bytes() == before
    code, lines = run_main(capsys, "keygen", "--out", str(out), "--force", "--key-type", "secp256k1")
    assert code == 0
    second = json.loads(lines[0])
    assert second["peer_id"] != first["peer_id"]
    assert str(PeerId.from_public_key(load_private_key_file(out).public_key)) == second["peer_id"]


def test_keygen_into_a_missing_folder_names_the_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "no" / "such" / "key"
    assert run_main(capsys, "keygen", "--out", str(out)) == (1, [json.dumps(
        {"error": f"--out {out}: folder {out.parent} does not exist"})])
    assert not (tmp_path / "no").exists() and list(tmp_path.iterdir()) == []  # no temp file left


def test_missing_or_bad_key_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nokey"
    assert run_main(capsys, "serve", "--key-file", str(missing)) == (1, [json.dumps(
        {"error": f"--key-file {missing}: No such file or directory"})])
    bad = tmp_path / "badkey"
    bad.write_text("not hex")
    assert run_main(capsys, "serve", "--key-file", str(bad)) == (1, [json.dumps(
        {"error": f"--key-file {bad}: not a key file (key file {bad} is neither a key protobuf nor its hex)"})])


def test_bind_failure_names_the_address(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = run_main(capsys, "serve", "--listen", f"/ip4/127.0.0.1/tcp/{port}")
    assert (code, lines) == (1, [json.dumps(
        {"error": f"cannot listen on /ip4/127.0.0.1/tcp/{port}: address already in use"})])


def test_dial_refused_says_connection_refused(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: a connect is refused
        code, lines = run_main(capsys, "ping", f"/ip4/127.0.0.1/tcp/{port}", "--timeout", "5")
    assert (code, lines) == (1, [json.dumps(
        {"error": f"tcp connect to 127.0.0.1:{port} failed: connection refused"})])


def test_serve_start_up_line_says_where_the_identity_came_from(tmp_path: Path) -> None:
    key = tmp_path / "key"
    assert run_p2p("keygen", "--out", str(key)).returncode == 0
    for args, source in (([], "new ed25519 key"), (["--key-type", "rsa"], "new rsa key"),
                         (["--key-file", str(key)], f"key file {key}")):
        proc = subprocess.Popen([sys.executable, "-m", "p2p", "serve", *args], cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["identity"] == source
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert proc.returncode == 0


def test_debug_log_is_ours_not_the_multiaddr_librarys() -> None:
    peer = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        done = run_p2p("--log-level", "debug", "ping", f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}",
                       "--timeout", "5")
    assert done.returncode == 1
    assert " DEBUG " in done.stderr  # debug is on ...
    assert "multiaddr" not in done.stderr  # ... without the address parser's per-parse lines


def test_bad_multiaddr_is_named(capsys) -> None:
    assert run_main(capsys, "ping", "/ip4/127.0.0.1/tcp/1/p2p/xyz") == (1, [json.dumps(
        {"error": "bad multiaddr '/ip4/127.0.0.1/tcp/1/p2p/xyz': invalid CID: xyz"})])
