"""What the hub publishes over MQTT, as topics and payloads: pure, so tests can read it.

    <prefix>/availability          online | offline (retained; the last will says offline)
    <prefix>/<camera>/motion       ON | OFF (retained)
    <prefix>/<camera>/status       online | offline (retained)
    <prefix>/<camera>/health       JSON: state, reason, frame and bit rate... (retained)
    <prefix>/events                one JSON object per event start, update and end
    <prefix>/offsite               JSON: the off-site copy's state, reason, backlog (retained)
    <prefix>/offsite/problem       ON | OFF: failing or behind (retained)
    <discovery>/binary_sensor/<node>/<camera>_motion/config   Home Assistant discovery,
    <discovery>/sensor/<node>/<camera>_{fps,kbit_s,status}/config   one per entity
    <discovery>/binary_sensor/<node>/offsite_problem/config   (with [offsite] only)
    <discovery>/sensor/<node>/offsite_{pending,lag}/config

Only metadata: ids, times, scores and boxes. No picture or footage is ever a payload.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.alerts.happenings import (
    CameraChanged,
    EventChanged,
    Happening,
    HealthChanged,
    MotionChanged,
    OffsiteChanged,
)
from hub.health import CameraHealth
from hub.offsite.state import OffsiteHealth, OffsiteState

ON, OFF = "ON", "OFF"
ONLINE, OFFLINE = "online", "offline"
MAX_STATE = 255  # characters in a Home Assistant state; a longer one is refused
_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class CameraInfo:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class HubInfo:
    """The one Home Assistant device that all of a hub's cameras belong to."""

    version: str
    page_url: str | None  # the owner's page, where Home Assistant links to it


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str  # validated by the config: topic levels without wildcards
    discovery_prefix: str

    @property
    def node(self) -> str:
        """The prefix as a Home Assistant node id (letters, digits, "_" and "-")."""
        return _NODE_UNSAFE.sub("_", self.prefix)

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    def motion(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}/motion"

    def status(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}/status"

    def health(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}/health"

    @property
    def offsite(self) -> str:
        return f"{self.prefix}/offsite"

    @property
    def offsite_problem(self) -> str:
        return f"{self.prefix}/offsite/problem"

    def discovery(self, camera_id: str) -> str:
        """The camera's motion binary_sensor."""
        return f"{self.discovery_prefix}/binary_sensor/{self.node}/{camera_id}_motion/config"

    def sensor_discovery(self, camera_id: str, sensor: str) -> str:
        """One of the camera's health sensors: "fps", "kbit_s" or "status"."""
        return f"{self.discovery_prefix}/sensor/{self.node}/{camera_id}_{sensor}/config"

    @property
    def discovery_filters(self) -> tuple[str, ...]:
        """Match every discovery topic this hub may have announced, in any run."""
        return tuple(
            f"{self.discovery_prefix}/{component}/{self.node}/+/config"
            for component in ("binary_sensor", "sensor")
        )


def messages_for(
    topics: Topics, happening: Happening, cameras: dict[str, CameraInfo]
) -> list[Message]:
    """What one happening becomes on the broker."""
    if isinstance(happening, MotionChanged):
        payload = ON if happening.moving else OFF
        return [Message(topics.motion(happening.camera_id), payload.encode(), retain=True)]
    if isinstance(happening, CameraChanged):
        return [camera_status(topics, happening.camera_id, online=happening.online)]
    if isinstance(happening, HealthChanged):
        payload = health_json(happening.health)
        return [Message(topics.health(happening.camera_id), payload, retain=True)]
    if isinstance(happening, OffsiteChanged):
        return offsite_messages(topics, happening.state)
    camera = cameras.get(happening.camera_id)
    name = camera.name if camera is not None else happening.camera_id
    return [Message(topics.events, event_json(happening, name), retain=False)]


def camera_status(topics: Topics, camera_id: str, *, online: bool) -> Message:
    return Message(topics.status(camera_id), (ONLINE if online else OFFLINE).encode(), True)


def hub_availability(topics: Topics, *, online: bool) -> Message:
    return Message(topics.availability, (ONLINE if online else OFFLINE).encode(), retain=True)


def event_json(event: EventChanged, camera_name: str) -> bytes:
    """One event record: what, where and when; never a picture."""
    doc = {
        "type": event.phase.value,
        "event_id": event.event_id,
        "camera": event.camera_id,
        "camera_name": camera_name,
        "start": round(event.start, 3),
        "end": None if event.end is None else round(event.end, 3),
        "peak_score": round(event.peak_score, 4),
        "box": [round(v, 4) for v in event.bbox],
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def health_json(health: CameraHealth) -> bytes:
    """A camera's health for Home Assistant's sensors: figures and words, no picture."""
    doc = {
        "status": health.state,
        "reason": None if health.reason is None else health.reason[:MAX_STATE],
        "fps": None if health.fps is None else round(health.fps, 1),
        "kbit_s": None if health.kbit_s is None else round(health.kbit_s),
        "width": health.width,
        "height": health.height,
        "reconnects": health.reconnects,
        "last_frame": None if health.last_frame is None else round(health.last_frame, 1),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def offsite_json(state: OffsiteState) -> bytes:
    """The copy's state for Home Assistant: words and counts, never a key or a file name."""
    doc = {
        "state": state.health.value,
        "reason": None if state.reason is None else state.reason[:MAX_STATE],
        "pending": state.pending,
        "oldest_pending_s": None if state.oldest_age is None else round(state.oldest_age),
        "last_success": None if state.last_success is None else round(state.last_success, 1),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def offsite_messages(topics: Topics, state: OffsiteState) -> list[Message]:
    """The state, and the problem sensor's ON/OFF; with no copy configured the latter is
    cleared (an empty retained payload), so no stale problem is left on the broker."""
    problem = b""
    if state.health is not OffsiteHealth.OFF:
        trouble = state.health in (OffsiteHealth.FAILING, OffsiteHealth.BEHIND)
        problem = (ON if trouble else OFF).encode()
    return [
        Message(topics.offsite, offsite_json(state), retain=True),
        Message(topics.offsite_problem, problem, retain=True),
    ]


def discovery_configs(
    topics: Topics, camera: CameraInfo, hub: HubInfo
) -> dict[str, dict[str, object]]:
    """The camera's Home Assistant entities by discovery topic, under the hub's device:
    the motion binary_sensor, and the health sensors (diagnostic ones, as HA files them).

    The unique ids are made of the camera's id, never its name: a camera renamed on the
    page is announced again under the same ids, and Home Assistant keeps its entities,
    their history and the owner's customisations. The motion sensor and the stream's
    figures are available only while both the hub and the camera are: a camera that
    lost its stream (or is disabled) shows "unavailable" rather than a state nobody is
    measuring. The status sensor needs only the hub, since it says why the camera is off.
    """
    both = [_available(topics.availability), _available(topics.status(camera.id))]
    common: dict[str, object] = {
        "qos": 1,
        "device": _device(topics, hub),
        "origin": {"name": "camhub", "sw_version": hub.version},
    }
    measured = {"availability": both, "availability_mode": "all", **common}
    diagnostic = {"state_topic": topics.health(camera.id), "entity_category": "diagnostic"}
    unique = f"camhub_{topics.node}_{camera.id}"
    return {
        topics.discovery(camera.id): {
            "name": f"{camera.name} motion",
            "unique_id": f"{unique}_motion",
            "device_class": "motion",
            "state_topic": topics.motion(camera.id),
            "payload_on": ON,
            "payload_off": OFF,
            **measured,
        },
        topics.sensor_discovery(camera.id, "fps"): {
            "name": f"{camera.name} frame rate",
            "unique_id": f"{unique}_fps",
            "value_template": "{{ value_json.fps }}",  # null: "None", which HA shows unknown
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            **diagnostic,
            **measured,
        },
        topics.sensor_discovery(camera.id, "kbit_s"): {
            "name": f"{camera.name} bit rate",
            "unique_id": f"{unique}_kbit_s",
            "value_template": "{{ value_json.kbit_s }}",
            "device_class": "data_rate",
            "unit_of_measurement": "kbit/s",
            "state_class": "measurement",
            "suggested_display_precision": 0,
            **diagnostic,
            **measured,
        },
        topics.sensor_discovery(camera.id, "status"): {
            "name": f"{camera.name} status",
            "unique_id": f"{unique}_status",
            # "online", "disabled", or why it is offline in words ("offline" if unknown)
            "value_template": "{{ value_json.reason or value_json.status }}",
            **diagnostic,
            "availability": [_available(topics.availability)],
            **common,
        },
    }


def offsite_discovery_configs(topics: Topics, hub: HubInfo) -> dict[str, dict[str, object]]:
    """The off-site copy's entities, under the hub's device and available with the hub:
    a problem binary_sensor, and diagnostic sensors for the backlog."""
    common: dict[str, object] = {
        "qos": 1,
        "device": _device(topics, hub),
        "origin": {"name": "camhub", "sw_version": hub.version},
        "availability": [_available(topics.availability)],
    }
    diagnostic = {
        "state_topic": topics.offsite,
        "entity_category": "diagnostic",
        "state_class": "measurement",
    }
    unique = f"camhub_{topics.node}_offsite"
    return {
        f"{topics.discovery_prefix}/binary_sensor/{topics.node}/offsite_problem/config": {
            "name": "Off-site copy problem",
            "unique_id": f"{unique}_problem",
            "device_class": "problem",
            "state_topic": topics.offsite_problem,
            "payload_on": ON,
            "payload_off": OFF,
            "json_attributes_topic": topics.offsite,  # the reason, the backlog
            **common,
        },
        f"{topics.discovery_prefix}/sensor/{topics.node}/offsite_pending/config": {
            "name": "Off-site copy pending files",
            "unique_id": f"{unique}_pending",
            "value_template": "{{ value_json.pending }}",
            "unit_of_measurement": "files",
            **diagnostic,
            **common,
        },
        f"{topics.discovery_prefix}/sensor/{topics.node}/offsite_lag/config": {
            "name": "Off-site copy lag",
            "unique_id": f"{unique}_lag",
            "value_template": "{{ value_json.oldest_pending_s or 0 }}",
            "device_class": "duration",
            "unit_of_measurement": "s",
            **diagnostic,
            **common,
        },
    }


def _available(topic: str) -> dict[str, object]:
    return {"topic": topic, "payload_available": ONLINE, "payload_not_available": OFFLINE}


def _device(topics: Topics, hub: HubInfo) -> dict[str, object]:
    """The one Home Assistant device that all of a hub's entities belong to."""
    device: dict[str, object] = {
        "identifiers": [f"camhub_{topics.node}"],
        "name": "camhub" if topics.node == "camhub" else f"camhub {topics.node}",
        "manufacturer": "camhub",
        "model": "camhub home camera hub",
        "sw_version": hub.version,
    }
    if hub.page_url:
        device["configuration_url"] = hub.page_url
    return device


def all_discovery_configs(
    topics: Topics, cameras: list[CameraInfo], hub: HubInfo, *, offsite: bool = False
) -> dict[str, dict[str, object]]:
    """Every entity of these cameras, and of the off-site copy if `offsite`, by topic."""
    configs = {
        topic: config
        for camera in cameras
        for topic, config in discovery_configs(topics, camera, hub).items()
    }
    return configs | (offsite_discovery_configs(topics, hub) if offsite else {})


def discovery_messages(
    topics: Topics,
    cameras: list[CameraInfo],
    hub: HubInfo,
    *,
    announce: bool,
    offsite: bool = False,
) -> list[Message]:
    """Every camera's entities (and the off-site copy's, if `offsite`) announced, or
    (discovery turned off) removed with an empty retained payload, which is how Home
    Assistant forgets a discovered entity."""
    return [
        Message(topic, json.dumps(config).encode() if announce else b"", retain=True)
        for topic, config in all_discovery_configs(topics, cameras, hub, offsite=offsite).items()
    ]


def page_url(origins: tuple[str, ...], served_url: str | None, lan: list[IPAddress]) -> str | None:
    """Where Home Assistant can link to the owner's page: the first configured origin (a
    reverse proxy's name), else the address served (a LAN address of this box when it
    serves every address), and nothing when only this box itself could open it."""
    if origins:
        return origins[0] + "/"
    if served_url is None:
        return None
    parts = urlsplit(served_url)
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if host == "localhost" else served_url
    if address.is_loopback:
        return None
    if address.is_unspecified:
        if not lan:
            return None
        shown = f"[{lan[0]}]" if lan[0].version == 6 else str(lan[0])
        return parts._replace(netloc=f"{shown}:{parts.port}").geturl()
    return served_url
