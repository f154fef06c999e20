"""The hub's alerting, as one piece for the daemon: the bus, the camera status watch,
and the MQTT publisher when `[mqtt]` is enabled. Started after the cameras and the
page (so discovery can link to it), stopped after the cameras (so their last events
are told)."""

from __future__ import annotations

from collections.abc import Callable

from hub import __version__
from hub.alerts.bus import AlertBus
from hub.alerts.mqtt import MqttPublisher, MqttStatus
from hub.alerts.topics import CameraInfo
from hub.alerts.watch import StatusWatch
from hub.config import MqttSettings


class Alerts:
    """The bus from construction (the cameras' event sink needs it); its listeners
    from `start` to `stop`."""

    def __init__(self, mqtt: MqttSettings) -> None:
        self.bus = AlertBus()
        self._mqtt_settings = mqtt
        self._watch: StatusWatch | None = None
        self._mqtt: MqttPublisher | None = None

    def start(
        self, cameras: list[tuple[CameraInfo, Callable[[], bool]]], page_url: str | None
    ) -> None:
        """`cameras`: each camera and how to tell whether it is online now."""
        self._watch = StatusWatch(self.bus, {info.id: online for info, online in cameras})
        self._watch.start()
        if self._mqtt_settings.enabled:
            infos = [info for info, _ in cameras]
            self._mqtt = MqttPublisher(self._mqtt_settings, self.bus, infos, version=__version__)
            self._mqtt.start(page_url)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        if self._mqtt is not None:
            self._mqtt.stop()

    @property
    def mqtt_status(self) -> MqttStatus | None:
        """For the page: connected, refused, unreachable...; None when MQTT is off."""
        return self._mqtt.status if self._mqtt is not None else None
