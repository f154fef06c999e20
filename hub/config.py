"""The TOML config, read once at start-up into frozen settings, or refused whole.

A bad config must stop the hub with every problem listed against its key's path
(`camera[1].motion.threshold: must be 1..255, got 300`), never with a traceback or a
half-applied setting. Camera URLs may carry passwords, so nothing here shows one.
Only `load_config` touches the disk.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import unquote, urlsplit

LogLevel = Literal["debug", "info", "warning", "error"]
Recording = Literal["motion", "continuous", "off"]
OffsiteWhat = Literal["events", "all"]
OffsiteLock = Literal["off", "governance", "compliance"]
RtspTransport = Literal["tcp", "udp"]
Polygon = tuple[tuple[float, float], ...]  # (x, y) corners, as fractions of the frame

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
SOURCE_SCHEMES = (*NETWORK_SCHEMES, "file", "v4l2", "synthetic")
DETECT_SCHEMES = (*NETWORK_SCHEMES, "file")
SYNTHETIC_SCENES = ("porch",)
MAX_MASKS = 32
MAX_MASK_POINTS = 64
GB = 10**9  # storage sizes are decimal gigabytes, as disks are sold

T = TypeVar("T")


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubSettings:
    data_dir: Path = Path("/var/lib/camhub")
    log_level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class StorageSettings:
    segment_seconds: int = 4
    retention_days: int = 30  # 0: keep until the disk budget needs room
    max_footage_gb: float = 0.0  # 0: no budget besides min_free_gb
    min_free_gb: float = 1.0

    @property
    def max_footage_bytes(self) -> int:
        return round(self.max_footage_gb * GB)

    @property
    def min_free_bytes(self) -> int:
        return round(self.min_free_gb * GB)


@dataclass(frozen=True, slots=True)
class WebSettings:
    listen: str = "127.0.0.1:8443"
    tls: bool = True
    allow_plain_http: bool = False  # plain HTTP off loopback; checked at load
    session_idle_minutes: int = 30
    # Where else the page is served from (a reverse proxy's https://name), as browsers
    # send it in Origin: state changes from these are not cross-site.
    origins: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """The address to bind, without the brackets of an IPv6 address."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


@dataclass(frozen=True, slots=True)
class V4L2Settings:
    width: int = 1280
    height: int = 720
    fps: int = 15


@dataclass(frozen=True, slots=True)
class CameraMotion:
    detect_fps: float = 5.0
    detect_width: int = 320
    threshold: int = 25
    min_area: float = 0.002  # fraction of the unmasked frame
    light_change: float = 0.35
    start_frames: int = 2
    quiet_seconds: float = 5.0
    masks: tuple[Polygon, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class CameraSettings:
    """One camera. File URLs are always absolute here: `file:///abs/path`."""

    id: str
    name: str
    url: str
    detect_url: str = ""  # "": detect on `url`
    enabled: bool = True
    record: Recording = "motion"
    pre_roll: float = 5.0
    post_roll: float = 10.0
    rtsp_transport: RtspTransport = "tcp"
    realtime: bool = False  # pace a file at its frame rate
    audio: bool = False  # record the camera's sound (AAC kept, G.711 etc. made AAC)
    motion: CameraMotion = field(default_factory=CameraMotion)
    v4l2: V4L2Settings = field(default_factory=V4L2Settings)

    def __repr__(self) -> str:
        """The generated repr would print the camera's password."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["url"] = redact_url(self.url)
        shown["detect_url"] = redact_url(self.detect_url)
        return f"CameraSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass(frozen=True, slots=True, repr=False)
class OffsiteSettings:
    """Where sealed footage is copied (any S3-compatible store). The secret key comes
    from the table or from `credentials_file`, which load_config reads."""

    endpoint: str  # "https://host[:port]" or "http://host[:port]", nothing after
    bucket: str
    prefix: str = ""  # "" or ends with "/"
    access_key: str = ""
    secret_key: str = ""
    credentials_file: Path | None = None
    region: str = "us-east-1"
    what: OffsiteWhat = "events"
    keep_days: int = 0  # 0: the hub never deletes off-site copies
    max_upload_mbps: float = 0.0  # Mbit/s; 0: no cap
    # S3 Object Lock on every object written, for keep_days (DESIGN.md §16): a thief
    # with the box's bucket keys cannot delete or overwrite a locked copy.
    lock: OffsiteLock = "off"

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https://")

    @property
    def host(self) -> str:
        """host[:port] as S3 clients take it."""
        return self.endpoint.split("://", 1)[1]

    def __repr__(self) -> str:
        """The generated repr would print the secret key (and the access key with it)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["access_key"] = "***" if self.access_key else ""
        shown["secret_key"] = "***" if self.secret_key else ""
        return f"OffsiteSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True, repr=False)
class MqttSettings:
    """The MQTT broker the hub tells about motion (metadata only, never footage)."""

    enabled: bool = False
    url: str = ""  # mqtt://host[:port] or mqtts://host[:port]; required when enabled
    username: str = ""
    password: str = ""
    client_id: str = ""  # "": camhub-<topic prefix, as a Home Assistant node id>
    topic_prefix: str = "camhub"
    ca_file: Path | None = None  # mqtts only: trust this CA instead of the system's
    discovery: bool = True  # announce the cameras to Home Assistant (else remove them)
    discovery_prefix: str = "homeassistant"

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts:")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or MQTT_PORTS.get(parts.scheme, 1883)

    def __repr__(self) -> str:
        """The generated repr would print the password."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["password"] = "***" if self.password else ""
        return f"MqttSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


QuietRange = tuple[int, int]  # start and end, minutes after local midnight; may wrap


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """When the owner is alerted of a motion event (the page adds per-camera switches
    and a snooze); push to the browsers subscribed from the page."""

    cooldown_seconds: float = 60.0  # after an alert, a camera's events this soon are not
    quiet_hours: tuple[QuietRange, ...] = ()  # local times with no alerts
    time_zone: str = ""  # IANA name for quiet_hours; "": the system's local time
    push: bool = True  # Web Push to the browsers subscribed from the page
    push_contact: str = "mailto:camhub@localhost"  # VAPID "sub": whom a push service asks


@dataclass(frozen=True, slots=True, repr=False)
class WebhookSettings:
    """A generic HTTP target: POSTs each alert as JSON, signed with HMAC-SHA256."""

    enabled: bool = False
    url: str = ""  # http(s)://...; may hold a token (an ntfy topic): never logged
    secret: str = ""  # the HMAC key the receiver shares; never logged

    @property
    def where(self) -> str:
        """scheme://host[:port] only: the path and query may be a token (an ntfy topic)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    def __repr__(self) -> str:
        """The generated repr would print the secret and the URL's path."""
        secret = "***" if self.secret else ""
        return f"WebhookSettings(enabled={self.enabled!r}, url={self.where!r}, secret={secret!r})"


@dataclass(frozen=True, slots=True)
class Config:
    hub: HubSettings = field(default_factory=HubSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    web: WebSettings = field(default_factory=WebSettings)
    cameras: tuple[CameraSettings, ...] = ()
    offsite: OffsiteSettings | None = None  # no [offsite] table: nothing leaves the box
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    path: Path | None = None  # the file it was loaded from


class ConfigError(Exception):
    """A config that must not run, with every problem found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


# -- public API --------------------------------------------------------------------------


def load_config(path: Path) -> Config:
    """Read and check a config file; relative paths in it are relative to its directory."""
    path = path.absolute()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}: line {line} is not UTF-8 text"]) from None
    config = parse_config(text, base_dir=path.parent)
    if config.offsite is not None and config.offsite.credentials_file is not None:
        config = replace(config, offsite=_read_credentials(config.offsite))
    return replace(config, path=path)


def _read_credentials(offsite: OffsiteSettings) -> OffsiteSettings:
    """Fill in the keys from `credentials_file`: the access key on its first line, the
    secret key on its second (other lines are ignored). Never echoes what it read."""
    where = "offsite.credentials_file"
    path = offsite.credentials_file
    assert path is not None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read {path}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: {path} is not UTF-8 text"]) from None
    keys = [line.strip() for line in lines[:2]]
    if len(keys) < 2 or not all(keys):
        raise ConfigError(
            [f"{where}: {path} must hold the access key on line 1 and the secret key on line 2"]
        )
    return replace(offsite, access_key=keys[0], secret_key=keys[1])


def parse_config(text: str, *, base_dir: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc)]) from None
    problems: list[str] = []
    config = _read_config(_Table(data, "", problems), base_dir)
    if config is None:
        raise ConfigError(problems)
    return config


DEMO_PORT = 8080


def default_config(data_dir: Path, listen: str = f"127.0.0.1:{DEMO_PORT}") -> Config:
    """The demo hub: one synthetic porch camera, recording on motion, served over plain
    HTTP wherever it listens (`camhub demo --listen 0.0.0.0:8080` for a laptop on the
    LAN to reach a headless Pi): it is a throwaway hub with a made-up camera and a
    password made for it, so the plain-HTTP rule for real hubs is waived."""
    try:
        host = _split_listen(listen)[0]
    except _Invalid as exc:
        raise ConfigError([f"--listen: {reason}" for _, reason in exc.problems]) from None
    demo = CameraSettings(id="demo", name="Demo porch", url="synthetic:porch", record="motion")
    web = WebSettings(listen=listen, tls=False, allow_plain_http=not _is_loopback(host))
    return Config(hub=HubSettings(data_dir=data_dir), web=web, cameras=(demo,))


PLACEHOLDER_PASSWORDS = frozenset(
    {"change-me", "changeme", "change_me", "password", "passwd", "secret", "example", "xxx"}
)


def warnings(config: Config) -> list[str]:
    """What `check-config` points out without refusing the config: passwords still as
    an example left them, and V4L2 devices not present on this machine (a USB camera
    unplugged, or a config written for another box). Never shows a password."""
    found = []
    for n, cam in enumerate(config.cameras):
        for key in ("url", "detect_url"):
            url = getattr(cam, key)
            password = urlsplit(url).password if "://" in url else None
            if password is not None and unquote(password).lower() in PLACEHOLDER_PASSWORDS:
                found.append(
                    f"camera[{n}].{key}: the password is a placeholder ({redact_url(url)}); "
                    "put the camera's real password there"
                )
            if url.startswith("v4l2://") and not Path(url.removeprefix("v4l2://")).exists():
                found.append(
                    f"camera[{n}].{key}: no device {url.removeprefix('v4l2://')} on this "
                    "machine (is the camera plugged in?)"
                )
    if config.mqtt.password.lower() in PLACEHOLDER_PASSWORDS:
        found.append("mqtt.password: a placeholder; put the broker's real password there")
    return found


_SECRET_QUERY = re.compile(
    r"([?&;][^=&;#]*(?:pass|pwd|token|secret|key|auth|sig)[^=&;#]*=)[^&;#]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """`url` with its password, and password-like query values, replaced by ***.

    Errs on the side of hiding: everything from the user name's ":" to the last "@"
    goes, so a password with an unescaped "/" or "@" in it is hidden too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        url = f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{tail}"
    return _SECRET_QUERY.sub(r"\1***", url)


# -- reading tables ----------------------------------------------------------------------


class _Invalid(Exception):
    """Problems inside one value, each as (path below the key, e.g. "[1][0]", reason)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _invalid(reason: str) -> _Invalid:
    return _Invalid([("", reason)])


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Table:
    """One TOML table being read: checks each key it is asked for, then flags the rest."""

    def __init__(self, raw: object, path: str, problems: list[str]) -> None:
        self.path = path
        self.values: dict[str, Any] = {}
        self._problems = problems
        self._start = len(problems)
        self._known: list[str] = []
        self._is_table = isinstance(raw, dict)
        self._raw: dict[str, object] = raw if isinstance(raw, dict) else {}
        if not self._is_table:
            problems.append(f"{path}: must be a table, got {_show(raw)}")

    def key_path(self, key: str) -> str:
        shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
        return f"{self.path}.{shown}" if self.path else shown

    def problem(self, key: str, reason: str) -> None:
        self._problems.append(f"{self.key_path(key)}: {reason}")

    def read(self, key: str, check: Callable[[object], T], *, required: bool = False) -> T | None:
        """The checked value, or None (and a problem if it was bad or required)."""
        self._known.append(key)
        if key not in self._raw:
            if required and self._is_table:
                self.problem(key, "required key is missing")
            return None
        try:
            value = check(self._raw[key])
        except _Invalid as exc:
            for at, reason in exc.problems:
                self._problems.append(f"{self.key_path(key)}{at}: {reason}")
            return None
        self.values[key] = value
        return value

    def table(self, key: str, build: Callable[[_Table], object]) -> None:
        """A sub-table; absent means all its defaults."""
        self._known.append(key)
        self.values[key] = build(_Table(self._raw.get(key, {}), self.key_path(key), self._problems))

    def has(self, key: str) -> bool:
        return key in self._raw

    def optional_table(self, key: str, build: Callable[[_Table], object]) -> None:
        """A sub-table that is off when absent (no defaults are built for it)."""
        self._known.append(key)
        if key in self._raw:
            self.values[key] = build(_Table(self._raw[key], self.key_path(key), self._problems))

    def tables(self, key: str, build: Callable[[_Table], object]) -> None:
        """An array of tables ([[key]]); absent means none."""
        self._known.append(key)
        raw = self._raw.get(key, [])
        if not isinstance(raw, list):
            self.problem(key, f"must be an array of tables ([[{key}]]), got {_show(raw)}")
            return
        here = self.key_path(key)
        self.values[key] = [
            build(_Table(item, f"{here}[{i}]", self._problems)) for i, item in enumerate(raw)
        ]

    def done(self) -> dict[str, Any] | None:
        """Flag unknown keys; the values read, or None if anything in this table was wrong."""
        for key in self._raw:
            if key not in self._known:
                close = difflib.get_close_matches(key, self._known, n=1)
                self.problem(
                    key, "unknown key" + (f' (did you mean "{close[0]}"?)' if close else "")
                )
        return self.values if len(self._problems) == self._start else None

    def build(self, settings: Callable[..., T]) -> T | None:
        values = self.done()
        return None if values is None else settings(**values)


# -- the schema --------------------------------------------------------------------------


def _read_config(t: _Table, base_dir: Path) -> Config | None:
    t.table("hub", partial(_read_hub, base_dir=base_dir))
    t.table("storage", _read_storage)
    t.table("web", _read_web)
    ids: dict[str, str] = {}  # camera id -> path of the camera that has it
    t.tables("camera", partial(_read_camera, base_dir=base_dir, ids=ids))
    t.optional_table("offsite", partial(_read_offsite, base_dir=base_dir))
    t.table("mqtt", partial(_read_mqtt, base_dir=base_dir))
    t.table("alerts", _read_alerts)
    t.table("webhook", _read_webhook)
    values = t.done()
    if values is None:
        return None
    return Config(
        hub=values["hub"],
        storage=values["storage"],
        web=values["web"],
        cameras=tuple(values["camera"]),
        offsite=values.get("offsite"),
        mqtt=values["mqtt"],
        alerts=values["alerts"],
        webhook=values["webhook"],
    )


def _read_hub(t: _Table, base_dir: Path) -> HubSettings | None:
    t.read("data_dir", partial(_path, base_dir=base_dir))
    t.read("log_level", _choice(LogLevel))
    return t.build(HubSettings)


def _read_storage(t: _Table) -> StorageSettings | None:
    t.read("segment_seconds", _integer(1, 60))
    t.read("retention_days", _integer(0, 3650))
    t.read("max_footage_gb", _number(0, 100_000))
    t.read("min_free_gb", _number(0, 1000))
    return t.build(StorageSettings)


def _read_web(t: _Table) -> WebSettings | None:
    listen = t.read("listen", _listen)
    tls = t.read("tls", _boolean)
    plain_anywhere = t.read("allow_plain_http", _boolean)
    t.read("session_idle_minutes", _integer(1, 1440))
    t.read("origins", _origins)
    # An absent listen is the loopback default; a bad one is already reported.
    if tls is False and not plain_anywhere and listen is not None:
        host = _split_listen(listen)[0]
        if not _is_loopback(host):
            t.problem(
                "tls",
                f"plain HTTP is only served on loopback, not on {host}; "
                "set allow_plain_http = true to serve it there anyway",
            )
    return t.build(WebSettings)


def _read_camera(t: _Table, base_dir: Path, ids: dict[str, str]) -> CameraSettings | None:
    camera_id = t.read("id", _camera_id, required=True)
    t.read("name", _text(1, 64))
    url = t.read("url", partial(_url, schemes=SOURCE_SCHEMES, base_dir=base_dir), required=True)
    detect_url = t.read("detect_url", partial(_detect_url, base_dir=base_dir))
    t.read("enabled", _boolean)
    t.read("record", _choice(Recording))
    t.read("pre_roll", _number(0, 30))
    t.read("post_roll", _number(0, 300))
    t.read("rtsp_transport", _choice(RtspTransport))
    t.read("realtime", _boolean)
    audio = t.read("audio", _boolean)
    t.table("v4l2", _read_v4l2)
    t.table("motion", _read_motion)
    if camera_id in ids:
        t.problem("id", f"{_show(camera_id)} is already the id of {ids[camera_id]}")
    elif camera_id is not None:
        ids[camera_id] = t.path
    if detect_url and url and url.startswith(("v4l2:", "synthetic:")):
        t.problem("detect_url", "only network and file cameras have a detect stream")
    if audio and url and url.startswith(("v4l2:", "synthetic:")):
        t.problem("audio", "only network and file cameras carry sound")
    t.values.setdefault("name", camera_id)
    return t.build(CameraSettings)


def _read_offsite(t: _Table, base_dir: Path) -> OffsiteSettings | None:
    t.read("endpoint", _endpoint, required=True)
    t.read("bucket", _bucket, required=True)
    t.read("prefix", _prefix)
    access = t.read("access_key", _text(1, 128))
    secret = t.read("secret_key", _text(1, 256))
    creds = t.read("credentials_file", partial(_path, base_dir=base_dir))
    t.read("region", _region)
    t.read("what", _choice(OffsiteWhat))
    keep_days = t.read("keep_days", _integer(0, 36500))
    t.read("max_upload_mbps", _number(0, 100_000))
    lock = t.read("lock", _choice(OffsiteLock))
    if lock not in (None, "off") and not keep_days:
        t.problem("lock", "needs keep_days of 1 or more: a copy is locked for keep_days")
    inline = access is not None or secret is not None
    if creds is not None and inline:
        t.problem("credentials_file", "give the keys here or in credentials_file, not both")
    elif creds is None and not t.has("credentials_file"):
        for key in ("access_key", "secret_key"):
            if not t.has(key):
                t.problem(key, "required key is missing (or name a credentials_file)")
    return t.build(OffsiteSettings)


def _read_mqtt(t: _Table, base_dir: Path) -> MqttSettings | None:
    enabled = t.read("enabled", _boolean)
    url = t.read("url", _mqtt_url, required=bool(enabled))
    username = t.read("username", _text(0, 256))
    password = t.read("password", _secret)
    t.read("client_id", _client_id)
    t.read("topic_prefix", _topic_path)
    ca_file = t.read("ca_file", partial(_path, base_dir=base_dir))
    t.read("discovery", _boolean)
    t.read("discovery_prefix", _topic_path)
    if password and not username:
        t.problem("password", "is set but mqtt.username is not")
    if ca_file is not None and url is not None and not url.startswith("mqtts:"):
        t.problem("ca_file", 'is only used with TLS: make the url "mqtts://..."')
    return t.build(MqttSettings)


def _read_alerts(t: _Table) -> AlertSettings | None:
    t.read("cooldown_seconds", _number(0, 86400))
    t.read("quiet_hours", _quiet_hours)
    t.read("time_zone", _time_zone)
    t.read("push", _boolean)
    t.read("push_contact", _contact)
    return t.build(AlertSettings)


def _read_webhook(t: _Table) -> WebhookSettings | None:
    enabled = t.read("enabled", _boolean)
    t.read("url", _webhook_url, required=bool(enabled))
    secret = t.read("secret", _secret, required=bool(enabled))
    if secret is not None and len(secret) < 16:
        t.problem("secret", f"must be at least 16 characters, got {len(secret)}")
    return t.build(WebhookSettings)


def _read_v4l2(t: _Table) -> V4L2Settings | None:
    t.read("width", _integer(160, 3840))
    t.read("height", _integer(120, 2160))
    t.read("fps", _integer(1, 60))
    return t.build(V4L2Settings)


def _read_motion(t: _Table) -> CameraMotion | None:
    t.read("detect_fps", _number(0.5, 30))
    t.read("detect_width", _integer(64, 1280))
    t.read("threshold", _integer(1, 255))
    t.read("min_area", _number(0, 1))
    t.read("light_change", _number(0.05, 1))
    t.read("start_frames", _integer(1, 30))
    t.read("quiet_seconds", _number(0.5, 120))
    t.read("masks", _masks)
    return t.build(CameraMotion)


# -- value checks: each returns the value to keep or raises _Invalid ------------------------


def _show(value: object) -> str:
    """A value as TOML would write it, shortened, with any URL password hidden."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = redact_url(value)
        return json.dumps(text if len(text) <= 60 else text[:57] + "...", ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"must be true or false, got {_show(value)}")
    return value


def _integer(lo: int, hi: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"must be an integer, got {_show(value)}")
        if not lo <= value <= hi:
            raise _invalid(f"must be {lo}..{hi}, got {value}")
        return value

    return check


def _number(lo: float, hi: float) -> Callable[[object], float]:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"must be a number, got {_show(value)}")
        if not lo <= value <= hi:  # also refuses nan
            raise _invalid(f"must be {lo:g}..{hi:g}, got {_show(value)}")
        return float(value)

    return check


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _invalid(f"must be a string, got {_show(value)}")
    return value


def _text(lo: int, hi: int) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = _string(value)
        if not lo <= len(text) <= hi:
            raise _invalid(f"must be {lo}..{hi} characters, got {len(text)}")
        return text

    return check


def _choice(options: object) -> Callable[[object], str]:
    allowed: tuple[str, ...] = get_args(options)

    def check(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            listed = ", ".join(f'"{a}"' for a in allowed)
            raise _invalid(f"must be one of {listed}, got {_show(value)}")
        return value

    return check


def _secret(value: object) -> str:
    """A password: checked for type and length only, and never shown."""
    if not isinstance(value, str):
        raise _invalid("must be a string")
    if len(value) > 256:
        raise _invalid(f"must be at most 256 characters, got {len(value)}")
    return value


_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _client_id(value: object) -> str:
    text = _string(value)
    if text and not _CLIENT_ID.fullmatch(text):  # "": the default, made from the prefix
        raise _invalid(f'must be 1..64 of A-Z, a-z, 0-9, "_", ".", ":", "-", got {_show(text)}')
    return text


def _topic_path(value: object) -> str:
    """MQTT topic levels to publish under: no wildcards, no empty level, not a "$" topic."""
    text = _string(value)
    if not 1 <= len(text.encode()) <= 128:
        raise _invalid(f"must be 1..128 bytes, got {len(text.encode())}")
    if "+" in text or "#" in text:
        raise _invalid(f'must not contain the MQTT wildcards "+" or "#", got {_show(text)}')
    if "" in text.split("/"):
        raise _invalid(f'must not start or end with "/" or contain "//", got {_show(text)}')
    if text.startswith("$"):
        raise _invalid(f'must not start with "$" (the broker\'s own topics), got {_show(text)}')
    if any(c.isspace() or not c.isprintable() for c in text):
        raise _invalid(f"must not contain spaces or control characters, got {_show(text)}")
    return text


def _mqtt_url(value: object) -> str:
    """mqtt://host[:port] or mqtts://host[:port]; the credentials have keys of their own."""
    text = _string(value)
    scheme = text.partition("://")[0].lower()
    if scheme not in MQTT_PORTS:
        raise _invalid(f'must start with "mqtt://" or "mqtts://" (TLS), got {_show(text)}')
    if text.partition("://")[2][:1] in ("", "/", ":", "@"):
        raise _invalid(f'has no host, e.g. "{scheme}://192.168.1.10"')
    _check_network_url(text, scheme)
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not hold a user name or password: use mqtt.username, mqtt.password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _invalid(f"must be scheme://host[:port] with no path, got {_show(text)}")
    return f"{scheme}://{parts.netloc}"


_QUIET_RANGE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")


def _quiet_hours(value: object) -> tuple[QuietRange, ...]:
    ranges = _array(value, 'an array of local time ranges, e.g. ["22:30-06:30"]')
    if len(ranges) > 16:
        raise _invalid(f"must be at most 16 ranges, got {len(ranges)}")
    return tuple(_each(ranges, _quiet_range))


def _quiet_range(value: object) -> QuietRange:
    """ "HH:MM-HH:MM", 24-hour local time; a range that ends earlier than it starts
    goes past midnight."""
    text = _string(value)
    match = _QUIET_RANGE.fullmatch(text)
    if match is None:
        raise _invalid(f'must be "HH:MM-HH:MM" (24-hour), e.g. "22:30-06:30", got {_show(text)}')
    h0, m0, h1, m1 = (int(g) for g in match.groups())
    if (h0, m0) == (h1, m1):
        raise _invalid(f"starts and ends at the same time, got {_show(text)}")
    return (h0 * 60 + m0, h1 * 60 + m1)


def _time_zone(value: object) -> str:
    text = _string(value)
    if text == "":
        return text
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            f'is not a known time zone, e.g. "Europe/Berlin" ("" for the system\'s), '
            f"got {_show(text)}"
        ) from None
    return text


def _contact(value: object) -> str:
    """The VAPID "sub" claim: a mailto: or https: URL where a push service can reach
    the hub's owner (RFC 8292 §2.1)."""
    text = _string(value)
    if not (text.startswith("mailto:") and "@" in text) and not text.startswith("https://"):
        raise _invalid(f'must be "mailto:you@example.com" or an https:// URL, got {_show(text)}')
    if len(text) > 256 or any(c.isspace() or not c.isprintable() for c in text):
        raise _invalid("must be at most 256 characters, without spaces or control characters")
    return text


def _webhook_url(value: object) -> str:
    """http(s)://host[:port]/path; never echoed, as its path may be a token."""
    text = _string(value)
    scheme = text.partition("://")[0].lower()
    if scheme not in ("http", "https"):
        raise _invalid('must start with "https://" or "http://"')
    _check_network_url(text, scheme)
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not hold a user name or password (webhook.secret signs each POST)")
    if parts.fragment:
        raise _invalid("must not have a #fragment")
    return text


_CAMERA_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _camera_id(value: object) -> str:
    text = _string(value)
    if not _CAMERA_ID.fullmatch(text):
        raise _invalid(
            'must be 1..32 of a-z, 0-9, "_", "-", starting with a letter or digit, '
            f"got {_show(text)}"
        )
    return text


def _path(value: object, base_dir: Path) -> Path:
    """A file or directory, relative to the config's directory."""
    text = _string(value)
    if not text:
        raise _invalid("must not be empty")
    if text.startswith("~"):
        raise _invalid(f'"~" is not expanded here; write the full path, got {_show(text)}')
    return base_dir / text


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _split_listen(listen: str) -> tuple[str, int]:
    """Split "host:port" or "[ipv6]:port"; the web server binds the host unbracketed."""
    host, sep, port = listen.rpartition(":")
    if not (sep and host and port):
        raise _invalid(
            f'must be host:port, e.g. "127.0.0.1:8443" or "[::1]:8443", got {_show(listen)}'
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        valid = isinstance(_ip(host), ipaddress.IPv6Address)
    elif ":" in host:
        raise _invalid(f'an IPv6 address needs brackets, e.g. "[::1]:8443", got {_show(listen)}')
    elif host.replace(".", "").isdigit():
        valid = isinstance(_ip(host), ipaddress.IPv4Address)
    else:
        valid = _HOSTNAME.fullmatch(host) is not None
    if not valid:
        raise _invalid(f"{_show(host)} is not an IP address or host name")
    if not (port.isascii() and port.isdigit() and 0 <= int(port) <= 65535):
        raise _invalid(f"port must be 0..65535 (0: any free port), got {_show(listen)}")
    return host, int(port)


def _listen(value: object) -> str:
    text = _string(value)
    _split_listen(text)
    return text


def _origins(value: object) -> tuple[str, ...]:
    return tuple(
        _each(_array(value, 'an array of origins, e.g. ["https://cams.home.arpa"]'), _origin)
    )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(value: object) -> str:
    """An origin as a browser sends it: lower-case scheme and host, the port only if it
    is not the scheme's default, no path."""
    text = _string(value)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise _invalid(f'must start with "https://" or "http://", got {_show(text)}')
    rest = rest.removesuffix("/")
    if not rest or any(c in rest for c in "/?#@"):
        raise _invalid(f"must be scheme://host[:port], with no path, got {_show(text)}")
    if ":" not in rest.rsplit("]", 1)[-1]:
        rest = f"{rest}:{_DEFAULT_PORTS[scheme]}"
    try:
        host, port = _split_listen(rest)
    except _Invalid:
        host, port = "", 0
    if not host or port == 0:
        raise _invalid(f"needs a valid host name or address and port 1..65535, got {_show(text)}")
    host = f"[{ipaddress.ip_address(host)}]" if ":" in host else host.lower()
    return f"{scheme}://{host}" + ("" if port == _DEFAULT_PORTS[scheme] else f":{port}")


def _endpoint(value: object) -> str:
    """An S3 endpoint: scheme, host and port only (the bucket is named on its own)."""
    text = _string(value).removesuffix("/")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS:
        raise _invalid(f'must start with "https://" or "http://", got {_show(text)}')
    if not rest or any(c in rest for c in "/?#@") or any(c.isspace() for c in rest):
        raise _invalid(
            f'must be scheme://host[:port] with no path or user, e.g. "https://s3.example.net", '
            f"got {_show(text)}"
        )
    if ":" not in rest.rsplit("]", 1)[-1]:
        return f"{scheme.lower()}://{rest}"
    try:
        host, port = _split_listen(rest)
    except _Invalid:
        host, port = "", 0
    if not host or port == 0:
        raise _invalid(f"needs a valid host and port 1..65535, got {_show(text)}")
    return f"{scheme.lower()}://{rest}"


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"([A-Za-z0-9_.-]+/)*")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def _bucket(value: object) -> str:
    text = _string(value)
    if not _BUCKET.fullmatch(text) or ".." in text:
        raise _invalid(f"must be an S3 bucket name: 3..63 of a-z, 0-9, '.', '-', got {_show(text)}")
    return text


def _prefix(value: object) -> str:
    """ "" or path segments ending in "/" ("camhub/house/"); "/" is added if missing."""
    text = _string(value)
    if text and not text.endswith("/"):
        text += "/"
    if (
        len(text) > 200
        or not _PREFIX.fullmatch(text)
        or any(part in (".", "..") for part in text.split("/"))
    ):
        raise _invalid(
            "must be up to 200 characters of path segments (A-Z, a-z, 0-9, '_', '.', '-') "
            f'separated by "/", e.g. "camhub/house/", got {_show(text)}'
        )
    return text


def _region(value: object) -> str:
    text = _string(value)
    if not _REGION.fullmatch(text):
        raise _invalid(f"must be 1..64 of a-z, 0-9 and '-', got {_show(text)}")
    return text


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host == "localhost" or (ip is not None and ip.is_loopback)


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _url(value: object, schemes: tuple[str, ...], base_dir: Path) -> str:
    """A camera URL checked for its scheme's form; never echoes it (it may hold a password)."""
    text = _string(value)
    if not text:
        raise _invalid("must not be empty")
    match = _SCHEME.match(text)
    listed = ", ".join(schemes)
    if match is None:
        raise _invalid(f'has no scheme (one of {listed}); a file is "file:path/to/clip.mp4"')
    scheme, rest = match[1].lower(), text[match.end() :]
    if scheme not in schemes:
        raise _invalid(f'scheme "{match[1]}" is not supported here (use {listed})')
    if scheme in NETWORK_SCHEMES:
        _check_network_url(text, scheme)
        return f"{scheme}:{rest}"
    if scheme == "file":
        return "file://" + str(base_dir / _local_path(rest, 'e.g. "file:///abs/clip.mp4"'))
    if scheme == "v4l2":
        device = _local_path(rest, 'e.g. "v4l2:///dev/video0"')
        if not device.startswith("/"):
            raise _invalid('must name a device by its absolute path, e.g. "v4l2:///dev/video0"')
        return "v4l2://" + device
    if rest not in SYNTHETIC_SCENES:
        known = ", ".join(f'"synthetic:{s}"' for s in SYNTHETIC_SCENES)
        raise _invalid(f"unknown synthetic scene {_show(rest)} (known: {known})")
    return f"synthetic:{rest}"


def _detect_url(value: object, base_dir: Path) -> str:
    if value == "":
        return ""
    return _url(value, schemes=DETECT_SCHEMES, base_dir=base_dir)


def _check_network_url(url: str, scheme: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _invalid("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("is not a valid URL (check the brackets around an IPv6 host)") from None
    if not parts.hostname:
        raise _invalid(f"has no host, e.g. {scheme}://192.168.1.20/stream")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _invalid("has a bad port (must be 1..65535)")


def _local_path(rest: str, example: str) -> str:
    """The path in "scheme:///abs", "scheme:/abs" or "scheme:relative", taken literally."""
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise _invalid(
                f"must not name a host; three slashes before an absolute path, {example}"
            )
    if not rest:
        raise _invalid(f"names no path, {example}")
    return rest


def _array(value: object, expected: str) -> list[object]:
    if not isinstance(value, list):
        raise _invalid(f"must be {expected}, got {_show(value)}")
    return value


def _each(items: list[object], check: Callable[[object], T]) -> list[T]:
    """Check every item, reporting all the bad ones under their index."""
    checked: list[T] = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        try:
            checked.append(check(item))
        except _Invalid as exc:
            problems += [(f"[{i}]{at}", reason) for at, reason in exc.problems]
    if problems:
        raise _Invalid(problems)
    return checked


def _masks(value: object) -> tuple[Polygon, ...]:
    polygons = _array(value, "an array of polygons")
    if len(polygons) > MAX_MASKS:
        raise _invalid(f"must be at most {MAX_MASKS} polygons, got {len(polygons)}")
    return tuple(_each(polygons, _polygon))


def _polygon(value: object) -> Polygon:
    points = _array(value, "a polygon: an array of [x, y] points")
    if not 3 <= len(points) <= MAX_MASK_POINTS:
        raise _invalid(f"a polygon needs 3..{MAX_MASK_POINTS} [x, y] points, got {len(points)}")
    polygon = tuple(_each(points, _point))
    doubled_area = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True)
    )
    if abs(doubled_area) < 1e-12:
        raise _invalid("polygon has no area (its points lie on one line)")
    return polygon


_fraction = _number(0, 1)


def _point(value: object) -> tuple[float, float]:
    coords = _array(value, "an [x, y] point")
    if len(coords) != 2:
        raise _invalid(f"must be an [x, y] point, got {len(coords)} values")
    x, y = _each(coords, _fraction)
    return (x, y)


def _syntax_problem(exc: tomllib.TOMLDecodeError) -> str:
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
    if match is None:
        return f"invalid TOML: {exc}"
    return f"line {match[2]}, column {match[3]}: invalid TOML: {match[1]}"
