"""A real RTSP camera on 127.0.0.1 for tests: GStreamer's RTSP server serving a clip.

The server runs as a subprocess of Debian's /usr/bin/python3, which owns the `gi`
bindings, by executing this very file; so at module level it imports the standard
library only. Killing that process is a faithful camera drop; restarting it on the
same port is the camera coming back.

    with RtspCamera(person_clip) as cam:
        AVSource(cam.url) ...
        cam.kill()
        cam.restart()

or, in a test module, `rtsp_camera = camera_fixture("person_clip")`.

A clip with an AAC track (an MP4: qtdemux reads nothing else) can be served with its
sound, `audio="aac"` as it is, or `audio="alaw"` re-encoded to G.711 A-law at 8 kHz
mono, as many doorbells send it; `audio="tone"` sends a live tone instead, which
outlasts a clip served without `loop` (a camera whose video stalls while its sound
goes on).
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
)
# GStreamer elements the server needs, and the Debian package that ships each.
_ELEMENTS = {
    "filesrc": "libgstreamer1.0-0",
    "identity": "libgstreamer1.0-0",
    "appsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "qtdemux": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
}
# ...and those for sound.
_AUDIO_ELEMENTS = {
    "aacparse": "gstreamer1.0-plugins-good",
    "rtpmp4apay": "gstreamer1.0-plugins-good",
    "faad": "gstreamer1.0-plugins-bad",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "alawenc": "gstreamer1.0-plugins-good",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "rtppcmapay": "gstreamer1.0-plugins-good",
}
#: How the clip's sound is served: not at all, as AAC, as G.711 A-law (8 kHz mono), or
#: replaced by an endless live A-law tone (which goes on after the clip's video ends).
AUDIO_MODES = ("none", "aac", "alaw", "tone")
_MISSING_EXIT = 3
MOUNT = "/cam"


class CameraUnavailable(RuntimeError):
    """The RTSP camera could not be started here (packages missing, or it failed)."""


def _install_hint(missing: str) -> str:
    return (
        f"RTSP test camera unavailable: {missing}. Install the Debian packages: "
        f"apt-get install {' '.join(DEBIAN_PACKAGES)}"
    )


class RtspCamera:
    """One RTSP camera process serving `clip` at rtsp://127.0.0.1:PORT/cam in real time."""

    def __init__(
        self, clip: Path, *, loop: bool = True, audio: str = "none", startup_timeout: float = 10.0
    ) -> None:
        if audio not in AUDIO_MODES:
            raise ValueError(f"audio must be one of {AUDIO_MODES}, got {audio!r}")
        self.clip = Path(clip)
        self.loop = loop
        self.audio = audio
        self.port = 0  # chosen by the server on first start, then kept across restarts
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        if not Path(SYSTEM_PYTHON).exists():
            raise CameraUnavailable(_install_hint(f"{SYSTEM_PYTHON} not found (package python3)"))
        if not self.clip.is_file():
            raise CameraUnavailable(f"RTSP test camera: clip not found: {self.clip}")
        args = [SYSTEM_PYTHON, __file__, str(self.clip), "--port", str(self.port)]
        args += ["--audio", self.audio]
        if self.loop:
            args.append("--loop")
        with tempfile.TemporaryFile() as errors:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
            try:
                self.port = self._read_port()
                self._wait_accepting()
            except CameraUnavailable:
                self.kill()
                raise
            except TimeoutError:
                self.kill()
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip()
                raise CameraUnavailable(f"RTSP test camera did not start: {detail}") from None

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self._startup_timeout)
        line = self._proc.stdout.readline().decode().strip() if ready else ""
        if line.startswith("MISSING "):
            raise CameraUnavailable(_install_hint(line.removeprefix("MISSING ")))
        if not line.startswith("PORT "):
            raise TimeoutError
        return int(line.removeprefix("PORT "))

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise TimeoutError
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError

    def stop(self) -> None:
        """Shut the camera down politely."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Drop the camera as a power cut would: kill -9, no goodbye to clients."""
        self._end(signal.SIGKILL)

    def freeze(self) -> None:
        """Stall the camera: connections stay open but nothing more is sent."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Bring the camera back on the same port."""
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.send_signal(signal.SIGCONT)  # a frozen camera must wake to hear SIGTERM
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serving(clip: Path, *, loop: bool = True, audio: str = "none") -> Iterator[RtspCamera]:
    """A started camera for a test, killed at the end. One that cannot start (missing
    system packages) fails the test with what to install; it never skips it."""
    import pytest  # here, not at the top: Debian's python runs this file and has no pytest

    camera = RtspCamera(clip, loop=loop, audio=audio)
    try:
        camera.start()
    except CameraUnavailable as err:
        pytest.fail(str(err))
    try:
        yield camera
    finally:
        camera.kill()


def camera_fixture(
    clip_fixture: str = "person_clip", *, loop: bool = True, audio: str = "none"
) -> Callable[..., Any]:
    """Make a pytest fixture yielding a started RtspCamera serving the named clip fixture.

    Missing system packages fail the test with the list to install; they never skip it.
    """
    import pytest  # here, not at the top: Debian's python runs this file and has no pytest

    @pytest.fixture
    def rtsp_camera(request: pytest.FixtureRequest) -> Iterator[RtspCamera]:
        with serving(request.getfixturevalue(clip_fixture), loop=loop, audio=audio) as camera:
            yield camera

    return rtsp_camera


# -- the server side, run by Debian's python3 --------------------------------------


_AUDIO_BRANCHES = {
    "none": "",
    "aac": " d.audio_0 ! queue ! aacparse ! rtpmp4apay name=pay1 pt=97",
    "alaw": (
        " d.audio_0 ! queue ! aacparse ! faad ! audioconvert ! audioresample"
        " ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1"
    ),
    "tone": (
        " audiotestsrc ! audio/x-raw,rate=8000,channels=1 ! identity sync=true ! alawenc"
        " ! rtppcmapay name=pay1"
    ),
}


def _launch_line(clip: Path, audio: str) -> str:
    location = str(clip).replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{location}" ! qtdemux name=d d.video_0 ! queue ! h264parse '
        "! identity sync=true ! rtph264pay name=pay0 pt=96 config-interval=1"
        f"{_AUDIO_BRANCHES[audio]} )"
    )


def _serve(clip: Path, port: int, loop: bool, audio: str) -> int:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as err:
        print(f"MISSING python3-gi / gir1.2-gst-rtsp-server-1.0 ({err})", flush=True)
        return _MISSING_EXIT
    Gst.init(None)
    needed = {**_ELEMENTS, **(_AUDIO_ELEMENTS if audio != "none" else {})}
    missing = sorted({pkg for name, pkg in needed.items() if not Gst.ElementFactory.find(name)})
    if missing:
        print(f"MISSING GStreamer elements from {', '.join(missing)}", flush=True)
        return _MISSING_EXIT

    main_loop = GLib.MainLoop()

    def on_media(_factory: Any, media: Any) -> None:
        if loop:
            _loop_at_end(media, GLib, Gst)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(clip, audio))
    factory.set_shared(True)  # one live picture for every client, as a camera has
    factory.connect("media-configure", on_media)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        return 1
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, main_loop.quit)
    print(f"PORT {server.get_bound_port()}", flush=True)
    main_loop.run()
    return 0


def _loop_at_end(media: Any, glib: Any, gst: Any) -> None:
    """Swallow the clip's end and seek back to its start, so the camera never ends.

    Every payloader's end is swallowed; the video's end rewinds both tracks.
    """
    bin_ = media.get_element()

    def rewind() -> bool:
        bin_.seek_simple(gst.Format.TIME, gst.SeekFlags.FLUSH | gst.SeekFlags.KEY_UNIT, 0)
        return False

    def on_event(_pad: Any, info: Any, video: bool) -> Any:
        if info.get_event().type == gst.EventType.EOS:
            if video:
                glib.idle_add(rewind)
            return gst.PadProbeReturn.DROP
        return gst.PadProbeReturn.OK

    for index in (0, 1):
        payloader = bin_.get_by_name(f"pay{index}")
        if payloader is not None:
            payloader.get_static_pad("sink").add_probe(
                gst.PadProbeType.EVENT_DOWNSTREAM, on_event, index == 0
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--audio", choices=AUDIO_MODES, default="none")
    args = parser.parse_args()
    return _serve(args.clip, args.port, args.loop, args.audio)


if __name__ == "__main__":
    sys.exit(main())
