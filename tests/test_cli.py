"""The `camhub` command's rough edges, as a new user meets them: the real CLI as a
subprocess (`--version`, `check-config` warnings, `init` at a real terminal through a
pty, `demo --listen` serving on 127.0.0.1 and framing the password)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from test_daemon import camhub, camhub_command

from hub import __version__
from hub.config import ConfigError, default_config

STEP_SECONDS = 60.0  # any one wait on the subprocess


def test_version(tmp_path: Path) -> None:
    result = camhub("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"camhub {__version__}"


CONFIG = """
[hub]
data_dir = "{root}/data"
[[camera]]
id = "door"
url = "rtsp://camhub:{password}@127.0.0.1:8554/cam"
[[camera]]
id = "usb"
url = "v4l2:///dev/video97"
[mqtt]
enabled = true
url = "mqtt://127.0.0.1"
username = "camhub"
password = "{password}"
"""


def test_check_config_warns_about_placeholder_passwords_and_missing_devices(
    tmp_path: Path,
) -> None:
    path = tmp_path / "camhub.toml"
    path.write_text(CONFIG.format(root=tmp_path, password="change-me"))
    result = camhub("check-config", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # warned, not refused
    assert "ok (2 camera(s)" in result.stdout
    warned = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warned) == 3, result.stderr
    assert "camera[0].url: the password is a placeholder" in warned[0]
    assert "camera[1].url: no device /dev/video97" in warned[1]
    assert "mqtt.password: a placeholder" in warned[2]
    assert "change-me" not in result.stderr + result.stdout  # never shown
    path.write_text(
        CONFIG.format(root=tmp_path, password="Tr0ub4dor-3").replace("/dev/video97", "/dev/null")
    )
    result = camhub("check-config", path, cwd=tmp_path)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


class Terminal:
    """`camhub` run at a real terminal (a pty that is its controlling tty), so getpass
    reads /dev/tty as it does for a person typing."""

    def __init__(self, *args: str, cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once, nothing else
            os.chdir(cwd)
            command = camhub_command()
            os.execv(command[0], [*command, *args])
        self.pid, self.fd = pid, fd
        self.seen = ""

    def expect(self, text: str) -> None:
        deadline = time.monotonic() + STEP_SECONDS
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; got {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child ended: EIO on Linux
                    chunk = b""
                assert chunk, f"ended before {text!r}; got {self.seen!r}"
                self.seen += chunk.decode(errors="replace")
        self.seen = self.seen.partition(text)[2]

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def exit_status(self) -> int:
        with_rest = ""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            with_rest += chunk.decode(errors="replace")
        self.seen += with_rest
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_init_asks_again_on_a_short_password_at_a_terminal(tmp_path: Path) -> None:
    term = Terminal("init", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    term.expect("New owner password: ")
    term.type("short")
    term.expect("at least 10 characters; try again")
    term.expect("New owner password: ")
    term.type("long enough password")
    term.expect("Repeat it: ")
    term.type("long enough passwerd")
    term.expect("the two passwords differ; try again")
    term.expect("New owner password: ")
    term.type("long enough password")
    term.expect("Repeat it: ")
    term.type("long enough password")
    term.expect("initialised")
    assert term.exit_status() == 0
    assert (tmp_path / "data" / "keys.json").exists()


def test_init_with_a_short_password_file_still_fails_with_the_reason(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    result = camhub(
        "init", "--data-dir", tmp_path / "data", "--password-file", secret, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr
    assert not (tmp_path / "data" / "keys.json").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_listen_frames_the_password_after_the_server_is_up(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [*camhub_command(), "demo", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + STEP_SECONDS
        while not any(line.startswith("| owner password: ") for line in lines):
            assert time.monotonic() < deadline and demo.poll() is None, lines
            lines.append(demo.stdout.readline().rstrip("\n"))
        password = re.search(r"owner password: (\S+)", lines[-1]).group(1)  # type: ignore[union-attr]
        assert f"| open http://127.0.0.1:{port}/" in "\n".join(lines)
        top = max(i for i, line in enumerate(lines) if line.startswith("+-"))
        assert lines[top] == "+" + "-" * (len(lines[top]) - 2) + "+"  # framed, password last
        assert all(line.startswith("| ") for line in lines[top + 1 :]), lines
        # The page is up when the password shows, and answers a LAN address as Host (a
        # laptop opening http://<pi's address>:8080/).
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", headers={"Host": f"192.168.1.50:{port}"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = demo.communicate(timeout=STEP_SECONDS)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, rest
    tail = rest.rstrip("\n").splitlines()
    assert tail[-2] == f"| owner password: {password}".ljust(len(tail[-1]) - 1) + "|", tail
    assert "motion event(s)" in rest


def test_demo_config_serves_plain_http_wherever_it_listens() -> None:
    lan = default_config(Path("/tmp/demo"), "0.0.0.0:8080")
    assert (lan.web.host, lan.web.tls, lan.web.allow_plain_http) == ("0.0.0.0", False, True)
    assert default_config(Path("/tmp/demo")).web.allow_plain_http is False  # loopback
    with pytest.raises(ConfigError, match="--listen"):
        default_config(Path("/tmp/demo"), "8080")
