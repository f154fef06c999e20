"""What the hub publishes over MQTT, as topics and payloads: pure, so tests can read it.

    <prefix>/availability          online | offline (retained; the last will says offline)
    <prefix>/<camera>/motion       ON | OFF (retained)
    <prefix>/<camera>/status       online | offline (retained)
    <prefix>/events                one JSON object per event start, update and end
    <discovery>/binary_sensor/<node>/<camera>_motion/config   Home Assistant discovery

Only metadata: ids, times, scores and boxes. No picture or footage is ever a payload.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.alerts.happenings import CameraChanged, EventChanged, Happening, MotionChanged

ON, OFF = "ON", "OFF"
ONLINE, OFFLINE = "online", "offline"
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

    def discovery(self, camera_id: str) -> str:
        return f"{self.discovery_prefix}/binary_sensor/{self.node}/{camera_id}_motion/config"

    @property
    def discovery_filter(self) -> str:
        """Matches every discovery topic this hub may have announced, in any run."""
        return f"{self.discovery_prefix}/binary_sensor/{self.node}/+/config"


def messages_for(
    topics: Topics, happening: Happening, cameras: dict[str, CameraInfo]
) -> list[Message]:
    """What one happening becomes on the broker."""
    if isinstance(happening, MotionChanged):
        payload = ON if happening.moving else OFF
        return [Message(topics.motion(happening.camera_id), payload.encode(), retain=True)]
    if isinstance(happening, CameraChanged):
        return [camera_status(topics, happening.camera_id, online=happening.online)]
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


def discovery_config(topics: Topics, camera: CameraInfo, hub: HubInfo) -> dict[str, object]:
    """A Home Assistant MQTT binary_sensor for the camera's motion, under the hub's device.

    Available only while both the hub and the camera are: a camera that lost its stream
    shows "unavailable" rather than a motion state nobody is watching.
    """
    device: dict[str, object] = {
        "identifiers": [f"camhub_{topics.node}"],
        "name": "camhub" if topics.node == "camhub" else f"camhub {topics.node}",
        "manufacturer": "camhub",
        "model": "camhub home camera hub",
        "sw_version": hub.version,
    }
    if hub.page_url:
        device["configuration_url"] = hub.page_url
    return {
        "name": f"{camera.name} motion",
        "unique_id": f"camhub_{topics.node}_{camera.id}_motion",
        "device_class": "motion",
        "state_topic": topics.motion(camera.id),
        "payload_on": ON,
        "payload_off": OFF,
        "availability": [
            {"topic": topics.availability, "payload_available": ONLINE,
             "payload_not_available": OFFLINE},
            {"topic": topics.status(camera.id), "payload_available": ONLINE,
             "payload_not_available": OFFLINE},
        ],
        "availability_mode": "all",
        "qos": 1,
        "device": device,
        "origin": {"name": "camhub", "sw_version": hub.version},
    }  # fmt: skip


def discovery_messages(
    topics: Topics, cameras: list[CameraInfo], hub: HubInfo, *, announce: bool
) -> list[Message]:
    """Every camera announced, or (discovery turned off) its entity removed with an
    empty retained payload, which is how Home Assistant forgets a discovered entity."""
    return [
        Message(
            topics.discovery(camera.id),
            json.dumps(discovery_config(topics, camera, hub)).encode() if announce else b"",
            retain=True,
        )
        for camera in cameras
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
