"""[alerts] and [webhook] in the config: key paths in every error, the secret never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import (
    AlertSettings,
    ConfigError,
    WebhookSettings,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "camhub.example.toml"
BASE = Path("/etc/camhub")
SECRET = "whk-s3cret-0123456789"
TOKEN_URL = "https://ntfy.example.org/porch-7f3a9c"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=BASE)
    return caught.value.problems


def test_defaults() -> None:
    config = parse_config("", base_dir=BASE)
    assert config.alerts == AlertSettings()
    assert config.alerts.cooldown_seconds == 60.0 and config.alerts.push
    assert config.webhook == WebhookSettings() and not config.webhook.enabled


def test_full_tables() -> None:
    config = parse_config(
        '[alerts]\ncooldown_seconds = 120\nquiet_hours = ["22:30-06:30", "13:00-14:00"]\n'
        'time_zone = "Europe/Berlin"\npush = false\npush_contact = "mailto:me@example.org"\n'
        f'[webhook]\nenabled = true\nurl = "{TOKEN_URL}"\nsecret = "{SECRET}"\n',
        base_dir=BASE,
    )
    assert config.alerts.quiet_hours == ((22 * 60 + 30, 6 * 60 + 30), (13 * 60, 14 * 60))
    assert config.alerts.time_zone == "Europe/Berlin" and not config.alerts.push
    assert config.webhook.url == TOKEN_URL and config.webhook.secret == SECRET
    shown = repr(config)
    assert SECRET not in shown and "porch-7f3a9c" not in shown
    assert "https://ntfy.example.org" in shown


def test_errors_name_their_key_paths() -> None:
    problems = problems_of(
        '[alerts]\ncooldown_seconds = -1\nquiet_hours = ["22:30-06:30", "7-9", "10:00-10:00"]\n'
        'time_zone = "Mars/Olympus"\npush = "yes"\npush_contact = "owner"\nsnooze = 1\n'
        '[webhook]\nenabled = true\nurl = "ftp://x"\nsecret = "short"\n'
    )
    assert problems == [
        "alerts.cooldown_seconds: must be 0..86400, got -1",
        'alerts.quiet_hours[1]: must be "HH:MM-HH:MM" (24-hour), e.g. "22:30-06:30", got "7-9"',
        'alerts.quiet_hours[2]: starts and ends at the same time, got "10:00-10:00"',
        'alerts.time_zone: is not a known time zone, e.g. "Europe/Berlin" ("" for the '
        'system\'s), got "Mars/Olympus"',
        'alerts.push: must be true or false, got "yes"',
        'alerts.push_contact: must be "mailto:you@example.com" or an https:// URL, got "owner"',
        "alerts.snooze: unknown key",
        'webhook.url: must start with "https://" or "http://"',
        "webhook.secret: must be at least 16 characters, got 5",
    ]


def test_an_enabled_webhook_needs_url_and_secret() -> None:
    assert problems_of("[webhook]\nenabled = true\n") == [
        "webhook.url: required key is missing",
        "webhook.secret: required key is missing",
    ]
    problems = problems_of('[webhook]\nurl = "https://user:pw@hooks.example/x"\n')
    assert problems == [
        "webhook.url: must not hold a user name or password (webhook.secret signs each POST)"
    ]


def test_a_bad_secret_is_never_echoed() -> None:
    problems = problems_of(f'[webhook]\nsecret = "{SECRET}" \nsecrets = 1\n[alerts]\nx = 1')
    assert all(SECRET not in line for line in problems)
    problems = problems_of(f"[webhook]\nsecret = {'1' * 300!r}\n".replace("'", '"'))
    assert problems == ["webhook.secret: must be at most 256 characters, got 300"]


def test_check_config_prints_the_paths(tmp_path: Path) -> None:
    config = tmp_path / "camhub.toml"
    config.write_text(f'[webhook]\nenabled = true\nurl = "{TOKEN_URL}"\nsecret = "tiny"\n')
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "webhook.secret: must be at least 16 characters, got 4" in done.stderr + done.stdout
    assert "porch-7f3a9c" not in done.stderr + done.stdout


def test_the_example_documents_every_key() -> None:
    config = load_config(EXAMPLE)
    assert not config.webhook.enabled
    documented = {line.split("=")[0].strip("# ") for line in EXAMPLE.read_text().splitlines()}
    assert set(AlertSettings.__dataclass_fields__) <= documented
    assert set(WebhookSettings.__dataclass_fields__) <= documented
