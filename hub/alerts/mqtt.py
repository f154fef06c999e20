"""Publishes the bus to an MQTT broker, and through it to Home Assistant.

Two threads of its own: paho-mqtt's network thread connects, reconnects after a wait
that doubles from 1 s up to `BACKOFF_MAX`, and runs the callbacks; the "mqtt" thread
drains the bus subscription and publishes. No camera ever waits here: the bus takes
happenings without blocking, and while the broker is away this side keeps only the
newest states (the bus's) and counts the event records it could not send. On every
(re)connection it tells the broker everything again (availability, discovery, every
current state), since a restarted broker may have lost its retained messages. A camera
renamed from the page is announced again from the "mqtt" thread too: the caller only
leaves the new names, newest wins, and wakes it.

A broker that refuses the credentials gets one log line and the `refused` status,
not a line per retry; it is retried (at most every `BACKOFF_MAX`) so that fixing the
broker's password file needs no restart of the hub. The password is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.alerts.bus import AlertBus
from hub.alerts.happenings import MotionChanged
from hub.alerts.topics import (
    CameraInfo,
    HubInfo,
    Message,
    Topics,
    all_discovery_configs,
    camera_status,
    discovery_messages,
    hub_availability,
    messages_for,
)
from hub.config import MqttSettings

log = logging.getLogger(__name__)


class _CallbackErrors(logging.Filter):
    """Of paho's own log, keep only exceptions raised in the callbacks (bugs here): its
    socket errors and "not connected" lines come at every retry, and the publisher
    already says each outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return str(record.msg).startswith("Caught exception")


_paho_log = logging.getLogger("hub.alerts.paho")
_paho_log.addFilter(_CallbackErrors())

BACKOFF_MIN = 1.0  # seconds before the first retry; doubles per failure
BACKOFF_MAX = 60.0
KEEPALIVE = 30  # seconds; a dead hub's last will is sent within 1.5x this
CONNECT_TIMEOUT = 5.0
GOODBYE_TIMEOUT = 3.0  # for the broker to acknowledge the "offline" messages at stop
QOS = 1
MAX_QUEUED = 1000  # messages paho may hold unacknowledged


class MqttState(StrEnum):
    CONNECTING = "connecting"  # not yet connected, or reconnecting
    CONNECTED = "connected"
    REFUSED = "refused"  # the broker refused the credentials or the client id
    UNREACHABLE = "unreachable"  # no TCP or TLS connection to the broker
    FAILED = "failed"  # could not start (an unreadable CA file)
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """For the page to show; replaced whole, so reading it from any thread is safe."""

    state: MqttState
    detail: str  # what went wrong, free of secrets; "" when nothing did
    since: float  # Unix time of the last change of state


class MqttPublisher:
    """Publishes happenings to one broker, from `start` to `stop`."""

    def __init__(
        self,
        settings: MqttSettings,
        bus: AlertBus,
        cameras: list[CameraInfo],
        *,
        version: str,
        offsite: bool = False,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
    ) -> None:
        """`offsite`: the hub has an off-site copy, whose entities are announced."""
        self._settings = settings
        self._offsite = offsite
        self._topics = Topics(settings.topic_prefix, settings.discovery_prefix)
        self._hub = HubInfo(version, None)
        self._cameras: dict[str, CameraInfo] = {}
        self._announced: set[str] = set()  # discovery topics of the current entities
        self._take_cameras(cameras)
        self._new_cameras: deque[list[CameraInfo]] = deque(maxlen=1)  # newest wins
        self._bus = bus
        self._version = version
        self._backoff = backoff
        self._wake = threading.Event()
        self._subscription = bus.subscribe(notify=self._wake.set)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._fresh = threading.Event()  # a new connection: tell the broker everything
        self._found: deque[str] = deque(maxlen=1000)  # retained discovery topics seen
        self._unsent = 0  # event records dropped while the broker was away
        self._dropped = 0  # event records the bus dropped for this publisher, as told
        self._status = MqttStatus(MqttState.CONNECTING, "", time.time())
        self._client: paho.Client | None = None
        self._last: paho.MQTTMessageInfo | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)

    @property
    def status(self) -> MqttStatus:
        return self._status

    @property
    def where(self) -> str:
        """The broker's address as the log shows it: never any credentials."""
        s = self._settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{'mqtts' if s.tls else 'mqtt'}://{host}:{s.port}"

    def start(self, page_url: str | None) -> None:
        """Connect in the background; `page_url` is where Home Assistant links to."""
        self._hub = HubInfo(self._version, page_url)
        try:
            client = self._make_client()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            detail = f"cannot use mqtt.ca_file {self._settings.ca_file}: {_reason(exc)}"
            self._set_status(MqttState.FAILED, detail)
            log.error("MQTT is off: %s", detail)
            self._bus.unsubscribe(self._subscription)
            return
        self._client = client
        client.connect_async(self._settings.host, self._settings.port, KEEPALIVE)
        client.loop_start()
        self._thread.start()
        log.info("MQTT: publishing to %s under %s/", self.where, self._topics.prefix)

    def cameras_changed(self, cameras: list[CameraInfo]) -> None:
        """New names (or cameras) from the page; from any thread, never waits: the "mqtt"
        thread announces what changed and removes the entities of cameras gone."""
        self._new_cameras.append(list(cameras))
        self._wake.set()

    def stop(self) -> None:
        """Say goodbye (cameras and hub offline) if connected, and disconnect."""
        if self._client is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=GOODBYE_TIMEOUT + CONNECT_TIMEOUT + 2.0)
        self._bus.unsubscribe(self._subscription)
        self._set_status(MqttState.STOPPED, "")

    # -- paho's thread ---------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"camhub-{self._topics.node}",
            protocol=paho.MQTTv311,
        )
        client.suppress_exceptions = True  # a bug in a callback must not end the thread
        client.enable_logger(_paho_log)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls:
            cafile = str(s.ca_file) if s.ca_file is not None else None
            client.tls_set_context(ssl.create_default_context(cafile=cafile))
        will = hub_availability(self._topics, online=False)
        client.will_set(will.topic, will.payload, qos=QOS, retain=True)
        client.reconnect_delay_set(*self._backoff)
        client.connect_timeout = CONNECT_TIMEOUT
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: paho.ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            if self._status.state is not MqttState.REFUSED:
                log.error(
                    "MQTT: the broker at %s refused the connection (%s): check mqtt.username "
                    "and mqtt.password; retrying at most every %.0f s",
                    self.where,
                    reason,
                    self._backoff[1],
                )
            self._set_status(MqttState.REFUSED, str(reason))
            return
        client.subscribe([(topic, QOS) for topic in self._topics.discovery_filters])
        self._connected.set()
        self._fresh.set()
        self._set_status(MqttState.CONNECTED, "")
        log.info("MQTT: connected to %s", self.where)
        self._wake.set()

    def _on_connect_fail(self, _client: paho.Client, _userdata: object) -> None:
        # paho calls this from inside its `except OSError`: the exception says why.
        detail = _reason(sys.exception())
        if self._status.state is not MqttState.UNREACHABLE:
            log.warning(
                "MQTT: cannot reach the broker at %s (%s); retrying at most every %.0f s",
                self.where,
                detail,
                self._backoff[1],
            )
        self._set_status(MqttState.UNREACHABLE, detail)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: object,
        _reason: paho.ReasonCode,
        _properties: object,
    ) -> None:
        if not self._connected.is_set():
            return
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("MQTT: lost the connection to the broker at %s; reconnecting", self.where)
            self._set_status(MqttState.CONNECTING, "")

    def _on_message(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        """A retained discovery config under this hub's node, from this run or an
        earlier one: the "mqtt" thread removes it unless it is a current entity's."""
        if message.retain and message.payload:
            self._found.append(message.topic)
            self._wake.set()

    def _set_status(self, state: MqttState, detail: str) -> None:
        if state is not self._status.state or detail != self._status.detail:
            self._status = MqttStatus(state, detail, time.time())

    # -- the "mqtt" thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            self._pump()
        self._pump()
        self._goodbye()

    def _pump(self) -> None:
        before = self._cameras
        if self._new_cameras:
            self._take_cameras(self._new_cameras.popleft())
        happenings = self._subscription.drain()
        if self._subscription.dropped > self._dropped:
            log.warning(
                "MQTT: %d event message(s) dropped: the publisher fell behind",
                self._subscription.dropped - self._dropped,
            )
            self._dropped = self._subscription.dropped
        if not self._connected.is_set():
            self._unsent += sum(not h.is_state for h in happenings)
            return
        if self._fresh.is_set():
            self._fresh.clear()
            self._tell_everything()
        elif self._cameras is not before:
            self._tell_cameras(before)
        for happening in happenings:
            for message in messages_for(self._topics, happening, self._cameras):
                self._send(message)
        while self._found:
            topic = self._found.popleft()
            if not (self._settings.discovery and topic in self._announced):
                self._send(Message(topic, b"", retain=True))
                log.info("MQTT: removed the Home Assistant entity announced at %s", topic)

    def _take_cameras(self, cameras: list[CameraInfo]) -> None:
        self._cameras = {camera.id: camera for camera in cameras}
        self._announced = set(
            all_discovery_configs(self._topics, cameras, self._hub, offsite=self._offsite)
        )

    def _tell_cameras(self, before: dict[str, CameraInfo]) -> None:
        """Announce the cameras that are new or renamed since `before`; remove those gone."""
        changed = [c for c in self._cameras.values() if before.get(c.id) != c]
        gone = [c for c in before.values() if c.id not in self._cameras]
        announce = self._settings.discovery
        told = discovery_messages(self._topics, changed, self._hub, announce=announce)
        told += discovery_messages(self._topics, gone, self._hub, announce=False)
        for message in told:
            self._send(message)
        if announce and (changed or gone):
            log.info(
                "MQTT: Home Assistant told of %d camera(s) changed and %d gone",
                len(changed),
                len(gone),
            )

    def _tell_everything(self) -> None:
        if self._unsent:
            log.info(
                "MQTT: %d event message(s) were not sent while the broker was away "
                "(the events are in the index)",
                self._unsent,
            )
            self._unsent = 0
        self._send(hub_availability(self._topics, online=True))
        cameras = list(self._cameras.values())
        announce = self._settings.discovery
        told = discovery_messages(
            self._topics, cameras, self._hub, announce=announce, offsite=self._offsite
        )
        for message in told:
            self._send(message)
        states = self._bus.states()
        # A camera that never saw motion in this run has no event open: its motion is off.
        known = {h.camera_id for h in states if isinstance(h, MotionChanged)}
        states += [MotionChanged(c, False, time.time()) for c in self._cameras if c not in known]
        for state in states:
            for message in messages_for(self._topics, state, self._cameras):
                self._send(message)

    def _goodbye(self) -> None:
        """A clean stop says offline itself (the broker sends the will only for a
        connection that dies), then disconnects."""
        assert self._client is not None
        if self._connected.is_set():
            for camera_id in self._cameras:
                self._send(camera_status(self._topics, camera_id, online=False))
            self._send(hub_availability(self._topics, online=False))
            if self._last is not None:
                # If the broker went away meanwhile, its last will says offline.
                with contextlib.suppress(RuntimeError, ValueError):
                    self._last.wait_for_publish(GOODBYE_TIMEOUT)
        self._client.disconnect()
        self._client.loop_stop()

    def _send(self, message: Message) -> None:
        assert self._client is not None
        self._last = self._client.publish(
            message.topic, message.payload, qos=QOS, retain=message.retain
        )


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if exc is not None else "unknown reason"
