"""The service unit is hardened and valid, as systemd itself judges it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.web.connections import RESERVED_FDS, connection_cap

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "camhub.service"
INSTALLED_COMMAND = "/opt/camhub/.venv/bin/camhub"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package")
    return tool


def test_exposure_is_at_most_2(systemd_analyze: str) -> None:
    out = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for camhub\.service: ([0-9.]+)", out.stdout)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0


def test_unit_verifies(systemd_analyze: str, tmp_path: Path) -> None:
    # verify checks that ExecStart exists; point it at this checkout's installed command.
    installed = Path(sys.executable).with_name("camhub")
    assert installed.exists(), "camhub is not installed in this virtualenv"
    unit = tmp_path / "camhub.service"
    text = UNIT.read_text()
    assert INSTALLED_COMMAND in text
    unit.write_text(text.replace(INSTALLED_COMMAND, str(installed)))
    out = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_runs_unprivileged_with_only_its_state_dir_writable() -> None:
    settings = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line)
    )
    assert settings["User"] == "camhub"
    assert settings["ProtectSystem"] == "strict"
    assert settings["StateDirectory"] == "camhub"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["CapabilityBoundingSet"] == ""


def test_descriptor_limit_leaves_recording_room_past_the_web_cap() -> None:
    """A flood of connections must not take the descriptors recording needs: the unit
    raises the limit, and the web side's cap derived from it keeps hundreds free."""
    settings = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line)
    )
    nofile = int(settings["LimitNOFILE"])
    assert nofile >= 4096
    assert nofile - connection_cap(nofile) >= RESERVED_FDS


DROP_IN = UNIT.with_name("camhub-internet.conf")


def test_the_internet_drop_in_only_widens_the_address_allow_list(
    systemd_analyze: str, tmp_path: Path
) -> None:
    """The documented override for Web Push: one setting, and the unit with it applied
    (a drop-in's list setting adds to the unit's) still verifies and rates the same."""
    settings = [
        line for line in DROP_IN.read_text().splitlines() if line and not line.startswith("#")
    ]
    assert settings == ["[Service]", "IPAddressAllow=any"]
    installed = Path(sys.executable).with_name("camhub")
    text = UNIT.read_text().replace(INSTALLED_COMMAND, str(installed))
    allow = next(line for line in text.splitlines() if line.startswith("IPAddressAllow="))
    unit = tmp_path / "camhub.service"
    unit.write_text(text.replace(allow, f"{allow}\n{settings[1]}"))
    verified = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    out = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for camhub\.service: ([0-9.]+)", out.stdout)
    assert match and float(match.group(1)) <= 2.0, out.stdout
