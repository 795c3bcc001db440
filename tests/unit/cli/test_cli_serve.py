"""``edgefed site serve`` up to the point uvicorn would take over: settings from flags,
file and environment, the private data directory, the listening socket, the READY
line, and each reason it refuses to start (exit 2, one line on stderr)."""

from __future__ import annotations

import gc
import linecache
import logging
import os
import socket
import stat
import typing
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy
from cli_kit import parse

from edgefed.cli import serve


@pytest.fixture(autouse=True)
def restore_process_state() -> Iterator[None]:
    """run() sets the umask and quiets httpx's logger for the process it runs in."""
    umask = os.umask(0o022)
    os.umask(umask)
    level = logging.getLogger("httpx").level
    yield
    os.umask(umask)
    logging.getLogger("httpx").setLevel(level)


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "site",
        "serve",
        "--name",
        "Berlin",
        "--data-dir",
        str(tmp_path / "berlin"),
        "--admin-password",
        "pw",
        "--port",
        "0",
        *extra,
    ]


def test_flags_override_the_config_file_and_the_password_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        'name = "Paris"\ndata_dir = "/srv/paris"\nadmin_password = "file-pw"\nport = 5003\n'
        'labels = { region = "eu" }\n'
    )
    settings = serve.settings_from_args(
        parse(["site", "serve", "--config", str(config), "--port", "6003", "--tls"])
    )
    assert (settings.name, settings.port, settings.tls) == ("Paris", 6003, True)
    assert (settings.admin_password, settings.labels["region"]) == ("file-pw", "eu")
    monkeypatch.setenv("EDGEFED_ADMIN_PASSWORD", "env-pw")
    args = parse(["site", "serve", "--name", "Rome", "--data-dir", str(tmp_path)])
    assert serve.settings_from_args(args).admin_password == "env-pw"
    assert serve.settings_from_args(args).tls is False  # not given: the default


def test_the_data_directory_and_database_files_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "berlin"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    for name in ("site.db", "site.db-wal", "site.toml", "notes.txt"):
        (data / name).write_text("x")
        os.chmod(data / name, 0o644)
    serve.private_data_dir(data)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert mode == {"site.db": 0o600, "site.db-wal": 0o600, "site.toml": 0o600, "notes.txt": 0o644}
    serve.private_data_dir(tmp_path / "new" / "site")
    assert stat.S_IMODE((tmp_path / "new" / "site").stat().st_mode) == 0o700


def test_port_zero_binds_a_free_loopback_port_before_the_app_starts() -> None:
    sock = serve.bind("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.get_inheritable()
        with socket.create_connection((host, port), timeout=5):
            pass  # it listens
    finally:
        sock.close()


def test_the_ready_line_names_the_site_its_url_and_where_it_listens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = SimpleNamespace(tls=False, host="127.0.0.1", port=5001)
    ctx = SimpleNamespace(
        settings=settings,
        name="Berlin",
        public_url="http://berlin.example",
        store=SimpleNamespace(engine=sqlalchemy.create_engine("sqlite://")),
    )
    try:
        serve.announce(ctx)  # type: ignore[arg-type]
    finally:
        gc.unfreeze()
    assert capsys.readouterr().out == (
        "EDGEFED READY name=Berlin url=http://berlin.example listen=http://127.0.0.1:5001\n"
    )


def test_ready_forgets_what_starting_cached(tmp_path: Path) -> None:
    """Compiled SQL, overload stubs, regular expressions and source lines that starting
    left behind go before the site is frozen (0.4 MiB, docs/bench.md); what a request
    needs again is made again."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'site.db'}")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.select(sqlalchemy.literal(1)))
    assert len(engine._compiled_cache) == 1  # type: ignore[arg-type]

    @typing.overload
    def stub(x: int) -> int: ...
    @typing.overload
    def stub(x: str) -> str: ...
    def stub(x: int | str) -> int | str:
        return x

    linecache.getlines(__file__)
    serve.forget_startup_caches(SimpleNamespace(store=SimpleNamespace(engine=engine)))  # type: ignore[arg-type]
    assert len(engine._compiled_cache) == 0  # type: ignore[arg-type]
    assert typing.get_overloads(stub) == []
    assert __file__ not in linecache.cache


def test_bad_settings_are_exit_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        ["site", "serve", "--name", "1st", "--data-dir", str(tmp_path), "--admin-password", "pw"]
    )
    assert serve.run(args) == 2
    assert capsys.readouterr().err.startswith("edgefed: site name '1st' must start with a letter")
    args = parse(["site", "serve", "--name", "Berlin", "--data-dir", str(tmp_path)])
    assert serve.run(args) == 2
    assert "setting 'admin_password' is required" in capsys.readouterr().err


def test_a_data_directory_that_cannot_be_used_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "berlin").write_text("a file where the directory should be")
    assert serve.run(parse(serve_args(tmp_path))) == 2
    assert f"cannot use data directory {tmp_path / 'berlin'}" in capsys.readouterr().err


def test_a_port_in_use_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = serve.bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        argv = serve_args(tmp_path)
        argv[argv.index("--port") + 1] = str(port)
        assert serve.run(parse(argv)) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        taken.close()


def test_a_tls_site_whose_certificate_cannot_be_read_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = serve_args(tmp_path, "--tls", "--tls-cert-file", str(tmp_path / "missing.pem"))
    assert serve.run(parse(argv)) == 2
    assert "edgefed: cannot set up TLS:" in capsys.readouterr().err
    assert os.umask(0o022) == 0o077  # the process creates private files from the start


def test_uvicorn_is_loaded_without_its_command_line() -> None:
    config_class, server_class = serve.uvicorn_server()
    assert config_class.__name__ == "Config" and server_class.__name__ == "Server"
