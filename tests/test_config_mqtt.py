"""[mqtt] in the config: checked with key paths, the password never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, MqttSettings, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "camhub.example.toml"

BASE = Path("/etc/camhub")
SECRET = "mqtt-s3cret-pw"


def mqtt(text: str) -> MqttSettings:
    return parse_config("[mqtt]\n" + text, base_dir=BASE).mqtt


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config("[mqtt]\n" + text, base_dir=BASE)
    return caught.value.problems


def test_defaults_leave_mqtt_off() -> None:
    settings = parse_config("", base_dir=BASE).mqtt
    assert settings == MqttSettings()
    assert not settings.enabled
    assert (settings.topic_prefix, settings.discovery, settings.discovery_prefix) == (
        "camhub",
        True,
        "homeassistant",
    )


def test_a_full_mqtt_table() -> None:
    settings = mqtt(
        'enabled = true\nurl = "MQTTS://broker.home.arpa"\nusername = "hub"\n'
        f'password = "{SECRET}"\nclient_id = "camhub-porch"\ntopic_prefix = "home/cams"\n'
        'ca_file = "ca.pem"\ndiscovery = false\ndiscovery_prefix = "ha"\n'
    )
    assert settings.url == "mqtts://broker.home.arpa"
    assert (settings.host, settings.port, settings.tls) == ("broker.home.arpa", 8883, True)
    assert settings.ca_file == BASE / "ca.pem"
    assert (settings.client_id, settings.topic_prefix) == ("camhub-porch", "home/cams")
    assert (settings.discovery, settings.discovery_prefix) == (False, "ha")
    assert SECRET not in repr(settings) and "password='***'" in repr(settings)
    assert SECRET not in repr(
        parse_config(f'[mqtt]\nusername="u"\npassword="{SECRET}"', base_dir=BASE)
    )


def test_the_example_documents_every_key_and_leaves_mqtt_off() -> None:
    settings = load_config(EXAMPLE).mqtt
    assert not settings.enabled
    assert settings.url == "mqtt://192.168.1.10:1883" and settings.client_id == ""
    documented = {line.split("=")[0].strip("# ") for line in EXAMPLE.read_text().splitlines()}
    assert set(MqttSettings.__dataclass_fields__) <= documented


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("mqtt://192.168.1.10", "192.168.1.10", 1883),
        ("mqtt://broker:1884", "broker", 1884),
        ("mqtts://[fd00::1]:8884", "fd00::1", 8884),
    ],
)
def test_broker_urls(url: str, host: str, port: int) -> None:
    settings = mqtt(f'url = "{url}"\n')
    assert (settings.host, settings.port) == (host, port)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("enabled = true\n", "mqtt.url: required key is missing"),
        (
            'url = "tcp://broker"\n',
            'mqtt.url: must start with "mqtt://" or "mqtts://" (TLS), got "tcp://broker"',
        ),
        ('url = "mqtt://"\n', 'mqtt.url: has no host, e.g. "mqtt://192.168.1.10"'),
        ('url = "mqtt://broker:0"\n', "mqtt.url: has a bad port (must be 1..65535)"),
        (
            'url = "mqtt://broker/topic"\n',
            'mqtt.url: must be scheme://host[:port] with no path, got "mqtt://broker/topic"',
        ),
        (
            f'url = "mqtt://hub:{SECRET}@broker"\n',
            "mqtt.url: must not hold a user name or password: use mqtt.username, mqtt.password",
        ),
        (f'password = "{SECRET}"\n', "mqtt.password: is set but mqtt.username is not"),
        ("password = 12\n", "mqtt.password: must be a string"),
        (
            'client_id = "my hub"\n',
            'mqtt.client_id: must be 1..64 of A-Z, a-z, 0-9, "_", ".", ":", "-", got "my hub"',
        ),
        (
            'topic_prefix = "cams/+/x"\n',
            'mqtt.topic_prefix: must not contain the MQTT wildcards "+" or "#", got "cams/+/x"',
        ),
        (
            'topic_prefix = "cams/"\n',
            'mqtt.topic_prefix: must not start or end with "/" or contain "//", got "cams/"',
        ),
        (
            'topic_prefix = "a//b"\n',
            'mqtt.topic_prefix: must not start or end with "/" or contain "//", got "a//b"',
        ),
        ('topic_prefix = ""\n', "mqtt.topic_prefix: must be 1..128 bytes, got 0"),
        (
            'topic_prefix = "$SYS"\n',
            'mqtt.topic_prefix: must not start with "$" (the broker\'s own topics), got "$SYS"',
        ),
        (
            'topic_prefix = "my cams"\n',
            'mqtt.topic_prefix: must not contain spaces or control characters, got "my cams"',
        ),
        (
            'discovery_prefix = "#"\n',
            'mqtt.discovery_prefix: must not contain the MQTT wildcards "+" or "#", got "#"',
        ),
        ('discovery = "yes"\n', 'mqtt.discovery: must be true or false, got "yes"'),
        (
            'url = "mqtt://b"\nca_file = "ca.pem"\n',
            'mqtt.ca_file: is only used with TLS: make the url "mqtts://..."',
        ),
        (
            'ca_file = "~/ca.pem"\n',
            'mqtt.ca_file: "~" is not expanded here; write the full path, got "~/ca.pem"',
        ),
        ('borker = "x"\n', "mqtt.borker: unknown key"),
        ('urll = "x"\n', 'mqtt.urll: unknown key (did you mean "url"?)'),
    ],
)
def test_bad_mqtt_settings_are_named_by_key_path(text: str, problem: str) -> None:
    problems = problems_of(text)
    assert problems == [problem]
    assert SECRET not in "\n".join(problems)


def test_a_new_broker_password_is_a_config_change_in_the_access_log() -> None:
    # The access log records "config changed" when this digest moves; the settings'
    # repr hides the password, so the digest must take it in some other way.
    from hub.daemon import _config_digest

    before = parse_config(f'[mqtt]\nusername = "u"\npassword = "{SECRET}"\n', base_dir=BASE)
    after = parse_config('[mqtt]\nusername = "u"\npassword = "another-pw"\n', base_dir=BASE)
    assert repr(before) == repr(after)
    assert _config_digest(before) != _config_digest(after)
