"""The config is refused with every problem named by its key's path, and never shows a
camera's password."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hub.config import (
    CameraMotion,
    CameraSettings,
    Config,
    ConfigError,
    HubSettings,
    OffsiteSettings,
    StorageSettings,
    V4L2Settings,
    WebSettings,
    default_config,
    load_config,
    parse_config,
    redact_url,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "camhub.example.toml"
BASE = Path("/etc/camhub")
SECRET = "s3cret-pw"
CAM = '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\n'
MOTION = CAM + "[camera.motion]\n"
V4L2 = '[[camera]]\nid = "usb"\nurl = "v4l2:///dev/video0"\n[camera.v4l2]\n'


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=BASE)
    return caught.value.problems


def camera_with(line: str) -> str:
    return CAM + line + "\n"


# -- good configs ------------------------------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)

    assert config.path == EXAMPLE
    assert [c.id for c in config.cameras] == ["porch", "garage"]
    porch, garage = config.cameras
    assert porch.url.startswith("rtsp://") and porch.detect_url.startswith("rtsp://")
    assert porch.record == "motion"
    assert len(porch.motion.masks) == 2 and porch.motion.masks[1][0] == (0.72, 0.92)
    assert garage.url == "v4l2:///dev/video0"
    assert garage.record == "continuous"
    assert garage.v4l2 == V4L2Settings(width=1280, height=720, fps=15)
    assert (garage.motion.detect_fps, garage.motion.threshold) == (2.0, 35)


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    sections = [HubSettings, StorageSettings, WebSettings, CameraSettings, CameraMotion]
    sections.append(OffsiteSettings)
    keys = [f.name for cls in [*sections, V4L2Settings] for f in dataclasses.fields(cls)]
    missing = [
        key
        for key in keys
        if key not in ("motion", "v4l2")
        and not re.search(rf"^(# )?{key} = ", text, flags=re.MULTILINE)
    ]
    assert missing == []
    assert "[camera.motion]" in text and "[camera.v4l2]" in text


def test_example_synthetic_camera_loads_when_uncommented() -> None:
    text = EXAMPLE.read_text().replace("# [[camera]]", "[[camera]]")
    text = re.sub(r"^# (id|name|url|record) = ", r"\1 = ", text, flags=re.MULTILINE)

    config = parse_config(text, base_dir=BASE)

    assert config.cameras[-1].id == "demo" and config.cameras[-1].url == "synthetic:porch"


def test_empty_config_is_all_defaults() -> None:
    assert parse_config("", base_dir=BASE) == Config()
    assert Config().hub.data_dir == Path("/var/lib/camhub")
    assert Config().cameras == ()


def test_camera_defaults() -> None:
    (camera,) = parse_config(CAM, base_dir=BASE).cameras

    assert camera.name == "porch"
    assert (camera.detect_url, camera.enabled, camera.record) == ("", True, "motion")
    assert (camera.pre_roll, camera.post_roll, camera.realtime) == (5.0, 10.0, False)
    assert camera.audio is False
    assert camera.motion == CameraMotion()
    assert camera.v4l2 == V4L2Settings()


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    text = camera_with("pre_roll = 3") + "[camera.motion]\nmin_area = 0\ndetect_fps = 2\n"
    (camera,) = parse_config(text, base_dir=BASE).cameras

    assert camera.pre_roll == 3.0 and isinstance(camera.pre_roll, float)
    assert camera.motion.min_area == 0.0 and isinstance(camera.motion.min_area, float)
    assert camera.motion.detect_fps == 2.0


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "camhub.toml"
    path.parent.mkdir()
    path.write_text(
        '[hub]\ndata_dir = "state"\n'
        '[[camera]]\nid = "a"\nurl = "file:clips/porch.mp4"\nrealtime = true\n'
        '[[camera]]\nid = "b"\nurl = "file:///srv/clips/yard.mp4"\n'
        '[[camera]]\nid = "c"\nurl = "file:/srv/clips/c.mp4"\ndetect_url = "file:small.mp4"\n'
    )

    config = load_config(path)

    assert config.hub.data_dir == tmp_path / "conf" / "state"
    assert [c.url for c in config.cameras] == [
        f"file://{tmp_path}/conf/clips/porch.mp4",
        "file:///srv/clips/yard.mp4",
        "file:///srv/clips/c.mp4",
    ]
    assert config.cameras[2].detect_url == f"file://{tmp_path}/conf/small.mp4"
    assert config.cameras[0].realtime is True


def test_audio_is_taken_from_network_and_file_cameras() -> None:
    text = '[[camera]]\nid = "door"\nurl = "rtsp://door/main"\naudio = true\n'
    (camera,) = parse_config(text, base_dir=BASE).cameras
    assert camera.audio is True


def test_absolute_data_dir_is_kept() -> None:
    config = parse_config('[hub]\ndata_dir = "/srv/camhub"\n', base_dir=BASE)
    assert config.hub.data_dir == Path("/srv/camhub")


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("RTSP://cam.local/live", "rtsp://cam.local/live"),
        ("rtsps://[fd00::20]:322/live", "rtsps://[fd00::20]:322/live"),
        ("https://192.168.1.30/mjpeg", "https://192.168.1.30/mjpeg"),
        ("v4l2:/dev/video2", "v4l2:///dev/video2"),
        ("synthetic:porch", "synthetic:porch"),
    ],
)
def test_good_urls_are_stored_in_canonical_form(url: str, stored: str) -> None:
    (camera,) = parse_config(f'[[camera]]\nid = "x"\nurl = "{url}"\n', base_dir=BASE).cameras
    assert camera.url == stored


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8443", "127.0.0.1", 8443),
        ("0.0.0.0:443", "0.0.0.0", 443),
        ("[::1]:8443", "::1", 8443),
        ("[::]:65535", "::", 65535),
        ("camhub.local:1", "camhub.local", 1),
    ],
)
def test_listen_address_gives_host_and_port(listen: str, host: str, port: int) -> None:
    web = parse_config(f'[web]\nlisten = "{listen}"\n', base_dir=BASE).web
    assert (web.host, web.port) == (host, port)


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"])
def test_plain_http_is_allowed_on_loopback(listen: str) -> None:
    web = parse_config(f'[web]\nlisten = "{listen}"\ntls = false\n', base_dir=BASE).web
    assert web.tls is False


def test_plain_http_off_loopback_needs_explicit_permission() -> None:
    text = '[web]\nlisten = "0.0.0.0:8080"\ntls = false\nallow_plain_http = true\n'
    assert parse_config(text, base_dir=BASE).web.allow_plain_http is True


def test_origins_are_normalised_as_browsers_send_them() -> None:
    text = '[web]\norigins = ["HTTPS://Cams.Home.arpa/", "http://10.0.0.2:80", "https://[FD00::1]:8443"]\n'
    assert parse_config(text, base_dir=BASE).web.origins == (
        "https://cams.home.arpa",
        "http://10.0.0.2",
        "https://[fd00::1]:8443",
    )


def test_storage_sizes_in_bytes() -> None:
    storage = parse_config(
        "[storage]\nmax_footage_gb = 250\nmin_free_gb = 1.5\n", base_dir=BASE
    ).storage
    assert storage.max_footage_bytes == 250_000_000_000
    assert storage.min_free_bytes == 1_500_000_000


def test_default_config_is_one_synthetic_demo_camera(tmp_path: Path) -> None:
    config = default_config(tmp_path)

    assert config.hub.data_dir == tmp_path
    (camera,) = config.cameras
    assert (camera.id, camera.url, camera.record) == ("demo", "synthetic:porch", "motion")
    # the demo camera is one a config file could have described
    text = (
        f'[hub]\ndata_dir = "{tmp_path}"\n[web]\nlisten = "127.0.0.1:8080"\ntls = false\n'
        '[[camera]]\nid = "demo"\nname = "Demo porch"\nurl = "synthetic:porch"\n'
    )
    assert parse_config(text, base_dir=BASE) == config


# -- bad configs: one problem each, exact path and reason --------------------------------

BAD = [
    # unknown keys, at every level
    ("cameras = []", 'cameras: unknown key (did you mean "camera"?)'),
    ("[server]\nport = 1", "server: unknown key"),
    ('"my key" = 1', '"my key": unknown key'),
    ("[storage]\nretention = 5", 'storage.retention: unknown key (did you mean "retention_days"?)'),
    ("[web]\nport = 8443", "web.port: unknown key"),
    (camera_with('recrod = "off"'), 'camera[0].recrod: unknown key (did you mean "record"?)'),
    (camera_with(f'password = "{SECRET}"'), "camera[0].password: unknown key"),
    (MOTION + "treshold = 9", 'camera[0].motion.treshold: unknown key (did you mean "threshold"?)'),
    (V4L2 + "framerate = 10", "camera[0].v4l2.framerate: unknown key"),
    # wrong types
    ('[storage]\nretention_days = "30"', 'storage.retention_days: must be an integer, got "30"'),
    ("[storage]\nsegment_seconds = true", "storage.segment_seconds: must be an integer, got true"),
    ("[storage]\nsegment_seconds = 4.5", "storage.segment_seconds: must be an integer, got 4.5"),
    ('[storage]\nmin_free_gb = "1"', 'storage.min_free_gb: must be a number, got "1"'),
    (camera_with("pre_roll = true"), "camera[0].pre_roll: must be a number, got true"),
    (MOTION + "threshold = false", "camera[0].motion.threshold: must be an integer, got false"),
    (V4L2 + "fps = 15.0", "camera[0].v4l2.fps: must be an integer, got 15.0"),
    ('[web]\ntls = "yes"', 'web.tls: must be true or false, got "yes"'),
    (camera_with("enabled = 1"), "camera[0].enabled: must be true or false, got 1"),
    ("[hub]\ndata_dir = 5", "hub.data_dir: must be a string, got 5"),
    ("[web]\nlisten = 8443", "web.listen: must be a string, got 8443"),
    ("hub = 5", "hub: must be a table, got 5"),
    ('storage = "big"', 'storage: must be a table, got "big"'),
    (camera_with("motion = 3"), "camera[0].motion: must be a table, got 3"),
    (camera_with("v4l2 = []"), "camera[0].v4l2: must be a table, got an array"),
    ('[camera]\nid = "x"', "camera: must be an array of tables ([[camera]]), got a table"),
    ("camera = [1]", "camera[0]: must be a table, got 1"),
    (
        "[hub]\nlog_level = 1979-05-27",
        'hub.log_level: must be one of "debug", "info", "warning", "error", got a date/time',
    ),
    # out of range, every bounded number
    ("[storage]\nsegment_seconds = 0", "storage.segment_seconds: must be 1..60, got 0"),
    ("[storage]\nsegment_seconds = 61", "storage.segment_seconds: must be 1..60, got 61"),
    ("[storage]\nretention_days = -1", "storage.retention_days: must be 0..3650, got -1"),
    ("[storage]\nretention_days = 3651", "storage.retention_days: must be 0..3650, got 3651"),
    ("[storage]\nmax_footage_gb = -0.5", "storage.max_footage_gb: must be 0..100000, got -0.5"),
    ("[storage]\nmax_footage_gb = 100001", "storage.max_footage_gb: must be 0..100000, got 100001"),
    ("[storage]\nmin_free_gb = 1000.5", "storage.min_free_gb: must be 0..1000, got 1000.5"),
    ("[storage]\nmin_free_gb = inf", "storage.min_free_gb: must be 0..1000, got inf"),
    ("[web]\nsession_idle_minutes = 0", "web.session_idle_minutes: must be 1..1440, got 0"),
    ("[web]\nsession_idle_minutes = 1441", "web.session_idle_minutes: must be 1..1440, got 1441"),
    (camera_with("pre_roll = 30.5"), "camera[0].pre_roll: must be 0..30, got 30.5"),
    (camera_with("pre_roll = -1"), "camera[0].pre_roll: must be 0..30, got -1"),
    (camera_with("post_roll = 301"), "camera[0].post_roll: must be 0..300, got 301"),
    (V4L2 + "width = 159", "camera[0].v4l2.width: must be 160..3840, got 159"),
    (V4L2 + "width = 3841", "camera[0].v4l2.width: must be 160..3840, got 3841"),
    (V4L2 + "height = 119", "camera[0].v4l2.height: must be 120..2160, got 119"),
    (V4L2 + "height = 2161", "camera[0].v4l2.height: must be 120..2160, got 2161"),
    (V4L2 + "fps = 0", "camera[0].v4l2.fps: must be 1..60, got 0"),
    (V4L2 + "fps = 61", "camera[0].v4l2.fps: must be 1..60, got 61"),
    (MOTION + "detect_fps = 0.4", "camera[0].motion.detect_fps: must be 0.5..30, got 0.4"),
    (MOTION + "detect_fps = 31", "camera[0].motion.detect_fps: must be 0.5..30, got 31"),
    (MOTION + "detect_width = 63", "camera[0].motion.detect_width: must be 64..1280, got 63"),
    (MOTION + "detect_width = 1281", "camera[0].motion.detect_width: must be 64..1280, got 1281"),
    (MOTION + "threshold = 0", "camera[0].motion.threshold: must be 1..255, got 0"),
    (MOTION + "threshold = 300", "camera[0].motion.threshold: must be 1..255, got 300"),
    (MOTION + "min_area = -0.1", "camera[0].motion.min_area: must be 0..1, got -0.1"),
    (MOTION + "min_area = 1.5", "camera[0].motion.min_area: must be 0..1, got 1.5"),
    (MOTION + "min_area = nan", "camera[0].motion.min_area: must be 0..1, got nan"),
    (MOTION + "light_change = 0.04", "camera[0].motion.light_change: must be 0.05..1, got 0.04"),
    (MOTION + "light_change = 1.1", "camera[0].motion.light_change: must be 0.05..1, got 1.1"),
    (MOTION + "start_frames = 0", "camera[0].motion.start_frames: must be 1..30, got 0"),
    (MOTION + "start_frames = 31", "camera[0].motion.start_frames: must be 1..30, got 31"),
    (MOTION + "quiet_seconds = 0.4", "camera[0].motion.quiet_seconds: must be 0.5..120, got 0.4"),
    (MOTION + "quiet_seconds = 121", "camera[0].motion.quiet_seconds: must be 0.5..120, got 121"),
    # enums
    (
        '[hub]\nlog_level = "verbose"',
        'hub.log_level: must be one of "debug", "info", "warning", "error", got "verbose"',
    ),
    (
        camera_with('record = "always"'),
        'camera[0].record: must be one of "motion", "continuous", "off", got "always"',
    ),
    (
        camera_with('record = "Motion"'),
        'camera[0].record: must be one of "motion", "continuous", "off", got "Motion"',
    ),
    (
        camera_with('rtsp_transport = "http"'),
        'camera[0].rtsp_transport: must be one of "tcp", "udp", got "http"',
    ),
    # camera ids and names
    ('[[camera]]\nurl = "synthetic:porch"', "camera[0].id: required key is missing"),
    ('[[camera]]\nid = "porch"', "camera[0].url: required key is missing"),
    *[
        (
            f'[[camera]]\nid = "{bad}"\nurl = "synthetic:porch"',
            'camera[0].id: must be 1..32 of a-z, 0-9, "_", "-", starting with a letter or digit, '
            f'got "{bad}"',
        )
        for bad in ["Porch", "-porch", "", "front porch", "a" * 33, "café"]
    ],
    ('[[camera]]\nid = 7\nurl = "synthetic:porch"', "camera[0].id: must be a string, got 7"),
    (CAM + CAM, 'camera[1].id: "porch" is already the id of camera[0]'),
    (camera_with('name = ""'), "camera[0].name: must be 1..64 characters, got 0"),
    (camera_with(f'name = "{"n" * 65}"'), "camera[0].name: must be 1..64 characters, got 65"),
    # URLs
    *[
        (
            f'[[camera]]\nid = "x"\nurl = "{url}"',
            f"camera[0].url: {reason}",
        )
        for url, reason in [
            (
                "ftp://cam/x",
                'scheme "ftp" is not supported here '
                "(use rtsp, rtsps, http, https, file, v4l2, synthetic)",
            ),
            (
                "192.168.1.20/stream",
                "has no scheme (one of rtsp, rtsps, http, https, file, v4l2, synthetic); "
                'a file is "file:path/to/clip.mp4"',
            ),
            ("", "must not be empty"),
            ("rtsp:///live", "has no host, e.g. rtsp://192.168.1.20/stream"),
            ("http:cam/live", "has no host, e.g. http://192.168.1.20/stream"),
            ("rtsp://cam:0/live", "has a bad port (must be 1..65535)"),
            ("rtsp://cam:65536/live", "has a bad port (must be 1..65535)"),
            ("rtsp://cam:rtsp/live", "has a bad port (must be 1..65535)"),
            (
                "rtsp://[fd00::20/live",
                "is not a valid URL (check the brackets around an IPv6 host)",
            ),
            ("rtsp://cam/my stream", "must not contain spaces or control characters"),
            (
                "v4l2:video0",
                'must name a device by its absolute path, e.g. "v4l2:///dev/video0"',
            ),
            (
                "v4l2://dev/video0",
                "must not name a host; three slashes before an absolute path, "
                'e.g. "v4l2:///dev/video0"',
            ),
            (
                "file://clips/a.mp4",
                "must not name a host; three slashes before an absolute path, "
                'e.g. "file:///abs/clip.mp4"',
            ),
            ("file:", 'names no path, e.g. "file:///abs/clip.mp4"'),
            ("synthetic:garden", 'unknown synthetic scene "garden" (known: "synthetic:porch")'),
        ]
    ],
    (
        camera_with('detect_url = "synthetic:porch"'),
        'camera[0].detect_url: scheme "synthetic" is not supported here '
        "(use rtsp, rtsps, http, https, file)",
    ),
    (
        camera_with('detect_url = "v4l2:///dev/video1"'),
        'camera[0].detect_url: scheme "v4l2" is not supported here '
        "(use rtsp, rtsps, http, https, file)",
    ),
    (
        camera_with('detect_url = "rtsp://cam/sub"'),
        "camera[0].detect_url: only network and file cameras have a detect stream",
    ),
    (camera_with('audio = "on"'), 'camera[0].audio: must be true or false, got "on"'),
    (camera_with("audio = true"), "camera[0].audio: only network and file cameras carry sound"),
    # motion masks
    (
        MOTION + "masks = [[[0, 0], [1, 1]]]",
        "camera[0].motion.masks[0]: a polygon needs 3..64 [x, y] points, got 2",
    ),
    (
        MOTION + "masks = [[[0, 0], [1, 0], [1, 1]], [[0, 0], [1.5, 0], [0, 1]]]",
        "camera[0].motion.masks[1][1][0]: must be 0..1, got 1.5",
    ),
    (
        MOTION + "masks = [[[0, 0], [1, 0], [0.5, -0.2]]]",
        "camera[0].motion.masks[0][2][1]: must be 0..1, got -0.2",
    ),
    (
        MOTION + "masks = [[[0, 0], [1, 0], [1, 1, 1]]]",
        "camera[0].motion.masks[0][2]: must be an [x, y] point, got 3 values",
    ),
    (
        MOTION + "masks = [[[0, 0], [1, 0], 0.5]]",
        "camera[0].motion.masks[0][2]: must be an [x, y] point, got 0.5",
    ),
    (
        MOTION + 'masks = [[[0, 0], [1, 0], ["0", 1]]]',
        'camera[0].motion.masks[0][2][0]: must be a number, got "0"',
    ),
    (
        MOTION + "masks = [[[0, 0], [0.5, 0.5], [1, 1]]]",
        "camera[0].motion.masks[0]: polygon has no area (its points lie on one line)",
    ),
    (MOTION + 'masks = "all"', 'camera[0].motion.masks: must be an array of polygons, got "all"'),
    (
        MOTION + "masks = [5]",
        "camera[0].motion.masks[0]: must be a polygon: an array of [x, y] points, got 5",
    ),
    (
        MOTION + "masks = [" + ", ".join(["[[0, 0], [1, 0], [1, 1]]"] * 33) + "]",
        "camera[0].motion.masks: must be at most 32 polygons, got 33",
    ),
    (
        MOTION + "masks = [[" + ", ".join(["[0, 0]"] * 65) + "]]",
        "camera[0].motion.masks[0]: a polygon needs 3..64 [x, y] points, got 65",
    ),
    # listen address and plain HTTP
    *[
        (f'[web]\nlisten = "{listen}"', f"web.listen: {reason}")
        for listen, reason in [
            ("8443", 'must be host:port, e.g. "127.0.0.1:8443" or "[::1]:8443", got "8443"'),
            (
                "127.0.0.1",
                'must be host:port, e.g. "127.0.0.1:8443" or "[::1]:8443", got "127.0.0.1"',
            ),
            (":8443", 'must be host:port, e.g. "127.0.0.1:8443" or "[::1]:8443", got ":8443"'),
            ("::1:8443", 'an IPv6 address needs brackets, e.g. "[::1]:8443", got "::1:8443"'),
            ("127.0.0.1:-1", 'port must be 0..65535 (0: any free port), got "127.0.0.1:-1"'),
            ("127.0.0.1:65536", 'port must be 0..65535 (0: any free port), got "127.0.0.1:65536"'),
            ("127.0.0.1:https", 'port must be 0..65535 (0: any free port), got "127.0.0.1:https"'),
            ("300.1.1.1:80", '"300.1.1.1" is not an IP address or host name'),
            ("[127.0.0.1]:80", '"127.0.0.1" is not an IP address or host name'),
            ("[::g]:80", '"::g" is not an IP address or host name'),
            ("cam_hub:80", '"cam_hub" is not an IP address or host name'),
        ]
    ],
    (
        '[web]\nlisten = "0.0.0.0:8080"\ntls = false',
        "web.tls: plain HTTP is only served on loopback, not on 0.0.0.0; "
        "set allow_plain_http = true to serve it there anyway",
    ),
    (
        '[web]\nlisten = "[fd00::2]:8080"\ntls = false',
        "web.tls: plain HTTP is only served on loopback, not on fd00::2; "
        "set allow_plain_http = true to serve it there anyway",
    ),
    *[
        (f"[web]\norigins = {origins}", f"web.origins{problem}")
        for origins, problem in [
            (
                '"https://a"',
                ': must be an array of origins, e.g. ["https://cams.home.arpa"], got "https://a"',
            ),
            ('["ftp://a"]', '[0]: must start with "https://" or "http://", got "ftp://a"'),
            ('["https://a", "cams"]', '[1]: must start with "https://" or "http://", got "cams"'),
            (
                '["https://a/page"]',
                '[0]: must be scheme://host[:port], with no path, got "https://a/page"',
            ),
            (
                '["https://owner@a"]',
                '[0]: must be scheme://host[:port], with no path, got "https://owner@a"',
            ),
            (
                '["https://a:99999"]',
                '[0]: needs a valid host name or address and port 1..65535, got "https://a:99999"',
            ),
            (
                '["http://a_b"]',
                '[0]: needs a valid host name or address and port 1..65535, got "http://a_b"',
            ),
        ]
    ],
    # paths
    ('[hub]\ndata_dir = ""', "hub.data_dir: must not be empty"),
    (
        '[hub]\ndata_dir = "~/camhub"',
        'hub.data_dir: "~" is not expanded here; write the full path, got "~/camhub"',
    ),
    # TOML syntax
    ('[hub]\nlog_level = "info\n', "line 2, column 18: invalid TOML: Illegal character '\\n'"),
    (
        '[hub]\nlog_level = "info"\nlog_level = "debug"\n',
        "line 3, column 20: invalid TOML: Cannot overwrite a value",
    ),
    (
        "[storage]\nretention_days = 30 days\n",
        "line 2, column 21: invalid TOML: Expected newline or end of document after a statement",
    ),
    ("x = [1,\n", "invalid TOML: Invalid value (at end of document)"),
]


@pytest.mark.parametrize(("text", "problem"), BAD, ids=[p for _, p in BAD])
def test_bad_config_is_refused_with_path_and_reason(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


def test_all_problems_are_reported_at_once() -> None:
    text = (
        '[hub]\nlog_level = "loud"\n'
        '[storage]\nretention_days = "30"\nsegment_seconds = 0\n'
        '[[camera]]\nid = "porch"\nurl = "ftp://cam/x"\nrecrod = "off"\n'
        "[camera.motion]\nthreshold = 300\n"
        "masks = [[[0, 0], [1, 1]], [[0, 0], [2, 0], [1, true]]]\n"
        '[[camera]]\nid = "porch"\nurl = "synthetic:porch"\n'
        "[web]\nsession_idle_minutes = true\n"
    )

    assert problems_of(text) == [
        'hub.log_level: must be one of "debug", "info", "warning", "error", got "loud"',
        "storage.segment_seconds: must be 1..60, got 0",
        'storage.retention_days: must be an integer, got "30"',
        "web.session_idle_minutes: must be an integer, got true",
        'camera[0].url: scheme "ftp" is not supported here '
        "(use rtsp, rtsps, http, https, file, v4l2, synthetic)",
        "camera[0].motion.threshold: must be 1..255, got 300",
        "camera[0].motion.masks[0]: a polygon needs 3..64 [x, y] points, got 2",
        "camera[0].motion.masks[1][1][0]: must be 0..1, got 2",
        "camera[0].motion.masks[1][2][1]: must be a number, got true",
        'camera[0].recrod: unknown key (did you mean "record"?)',
        'camera[1].id: "porch" is already the id of camera[0]',
    ]


def test_error_lists_one_problem_per_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("a = 1\nb = 2\n", base_dir=BASE)
    assert str(caught.value) == "a: unknown key\nb: unknown key"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"cannot read {path}: No such file or directory"]


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == [f"cannot read {tmp_path}: Is a directory"]


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "camhub.toml"
    path.write_bytes(b'[hub]\nlog_level = "d\xe9bug"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: line 2 is not UTF-8 text"]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "camhub.toml"
    path.write_bytes(b'\xef\xbb\xbf[hub]\nlog_level = "debug"\n')
    assert load_config(path).hub.log_level == "debug"


# -- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"rtsp://admin:{SECRET}@192.168.1.20:554/Streaming/Channels/101",
            "rtsp://admin:***@192.168.1.20:554/Streaming/Channels/101",
        ),
        (f"rtsps://admin:{SECRET}@[fd00::20]/live", "rtsps://admin:***@[fd00::20]/live"),
        (f"http://admin:{SECRET}@cam.local/video.mjpg", "http://admin:***@cam.local/video.mjpg"),
        (f"https://u:{SECRET}@cam.local:8443/x", "https://u:***@cam.local:8443/x"),
        ("rtsp://admin:p@ss/w0rd@cam/live", "rtsp://admin:***@cam/live"),
        ("rtsp://admin:@cam/live", "rtsp://admin:***@cam/live"),
        (
            f"http://cam/snapshot.cgi?user=admin&pwd={SECRET}&chn=1",
            "http://cam/snapshot.cgi?user=admin&pwd=***&chn=1",
        ),
        (f"http://cam/live?token={SECRET}", "http://cam/live?token=***"),
        (f"admin:{SECRET}@192.168.1.20/live", "admin:***@192.168.1.20/live"),
        ("rtsp://admin@cam/live", "rtsp://admin@cam/live"),
        ("rtsp://192.168.1.20:554/live", "rtsp://192.168.1.20:554/live"),
        ("synthetic:porch", "synthetic:porch"),
        ("v4l2:///dev/video0", "v4l2:///dev/video0"),
        ("", ""),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "text",
    [
        f'[[camera]]\nid = "x"\nurl = "ftp://admin:{SECRET}@cam/x"',
        f'[[camera]]\nid = "x"\nurl = "rtsp://admin:{SECRET}@/x"',
        f'[[camera]]\nid = "x"\nurl = "rtsp://admin:{SECRET}@cam:99999/x"',
        f'[[camera]]\nid = "x"\nurl = "rtsp://admin:{SECRET}@[cam/x"',
        f'[[camera]]\nid = "x"\nurl = "rtsp://admin:{SECRET}@cam/a b"',
        f'[[camera]]\nid = "x"\nurl = "admin:{SECRET}@192.168.1.20/live"',
        f'[[camera]]\nid = "x"\nurl = "{SECRET}"',
        f'[[camera]]\nid = "rtsp://admin:{SECRET}@cam/x"\nurl = "synthetic:porch"',
        camera_with(f'detect_url = "synthetic:{SECRET}"'),
        camera_with(f'enabled = "rtsp://admin:{SECRET}@cam/x"'),
        camera_with(f'name = "rtsp://admin:{SECRET}@cam/{"long/" * 10}"'),
        camera_with(f'record = "http://cam/snap?pwd={SECRET}"'),
        f'[web]\nlisten = "admin:{SECRET}@cam:8443"',
    ],
)
def test_errors_never_show_a_password(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=BASE)
    assert caught.value.problems
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_settings_repr_hides_the_password_but_keeps_the_url() -> None:
    text = (
        f'[[camera]]\nid = "porch"\nurl = "rtsp://admin:{SECRET}@cam/main"\n'
        f'detect_url = "rtsp://admin:{SECRET}@cam/sub"\n'
    )
    config = parse_config(text, base_dir=BASE)
    (camera,) = config.cameras

    assert camera.url == f"rtsp://admin:{SECRET}@cam/main"
    assert camera.detect_url == f"rtsp://admin:{SECRET}@cam/sub"
    for shown in (repr(config), str(config), repr(camera), f"{camera}"):
        assert SECRET not in shown
        assert "rtsp://admin:***@cam/main" in shown and "rtsp://admin:***@cam/sub" in shown


# -- [offsite] ---------------------------------------------------------------------------

OFFSITE = '[offsite]\nendpoint = "https://s3.example.net:9000/"\nbucket = "cams"\n'
KEYS = f'access_key = "AKIA-house"\nsecret_key = "{SECRET}"\n'


def test_no_offsite_table_means_nothing_leaves_the_box() -> None:
    assert parse_config("", base_dir=BASE).offsite is None


def test_offsite_defaults_and_normal_forms() -> None:
    offsite = parse_config(OFFSITE + KEYS + 'prefix = "house/front"\n', base_dir=BASE).offsite

    assert offsite is not None
    assert (offsite.endpoint, offsite.host, offsite.secure) == (
        "https://s3.example.net:9000",
        "s3.example.net:9000",
        True,
    )
    assert (offsite.bucket, offsite.prefix, offsite.region) == ("cams", "house/front/", "us-east-1")
    assert (offsite.what, offsite.keep_days, offsite.max_upload_mbps) == ("events", 0, 0.0)
    assert offsite.lock == "off"
    assert (offsite.access_key, offsite.secret_key) == ("AKIA-house", SECRET)


def test_example_offsite_table_loads_when_uncommented() -> None:
    text = EXAMPLE.read_text()
    start = text.index("# [offsite]")
    block = re.sub(r"^# ([a-z_]+ = |\[offsite\])", r"\1", text[start:], flags=re.MULTILINE)
    block = block.replace('credentials_file = "/etc/camhub/offsite.keys"\n', "")

    offsite = parse_config(text[:start] + block, base_dir=BASE).offsite

    assert offsite is not None and offsite.keep_days == 90 and offsite.prefix == "house/"
    assert offsite.lock == "compliance"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[offsite]\n", "offsite.endpoint: required key is missing"),
        ("[offsite]\n", "offsite.bucket: required key is missing"),
        (OFFSITE, "offsite.secret_key: required key is missing (or name a credentials_file)"),
        (OFFSITE + 'access_key = "a"\n', "offsite.secret_key: required key is missing"),
        (OFFSITE.replace("https", "ftp") + KEYS, 'offsite.endpoint: must start with "https://"'),
        (OFFSITE.replace(":9000/", "/cams") + KEYS, "offsite.endpoint: must be scheme://host"),
        (OFFSITE.replace("https://", "https://u:p@") + KEYS, "offsite.endpoint: must be scheme"),
        (OFFSITE.replace(":9000", ":0") + KEYS, "offsite.endpoint: needs a valid host and port"),
        (OFFSITE.replace('"cams"', '"Cams"') + KEYS, "offsite.bucket: must be an S3 bucket name"),
        (OFFSITE + KEYS + 'prefix = "../x"\n', "offsite.prefix: must be up to 200 characters"),
        (OFFSITE + KEYS + 'prefix = "/abs"\n', "offsite.prefix: must be up to 200 characters"),
        (OFFSITE + KEYS + 'what = "everything"\n', 'offsite.what: must be one of "events", "all"'),
        (OFFSITE + KEYS + "keep_days = -1\n", "offsite.keep_days: must be 0..36500, got -1"),
        (
            OFFSITE + KEYS + 'lock = "on"\n',
            'offsite.lock: must be one of "off", "governance", "compliance", got "on"',
        ),
        (
            OFFSITE + KEYS + 'lock = "compliance"\n',
            "offsite.lock: needs keep_days of 1 or more: a copy is locked for keep_days",
        ),
        (OFFSITE + KEYS + "max_upload_mbps = true\n", "offsite.max_upload_mbps: must be a number"),
        (OFFSITE + KEYS + 'region = "EU West"\n', "offsite.region: must be 1..64 of a-z"),
        (OFFSITE + KEYS + 'credentials_file = "k"\n', "offsite.credentials_file: give the keys"),
        (
            OFFSITE + KEYS + "bucket_name = 1\n",
            'offsite.bucket_name: unknown key (did you mean "bucket',
        ),
    ],
)
def test_bad_offsite_table_is_refused_with_path_and_reason(text: str, problem: str) -> None:
    found = problems_of(text)
    assert any(p.startswith(problem) for p in found), found
    assert not any(SECRET in p for p in found)


def test_offsite_secret_is_never_shown() -> None:
    config = parse_config(OFFSITE + KEYS, base_dir=BASE)
    too_long = OFFSITE + f'access_key = "a"\nsecret_key = "{SECRET * 40}"\n'

    assert SECRET not in repr(config) and "AKIA-house" not in repr(config)
    assert "secret_key='***'" in repr(config.offsite)
    assert not any(SECRET in p for p in problems_of(too_long))


def test_offsite_credentials_file_is_read_by_load_config(tmp_path: Path) -> None:
    keys = tmp_path / "offsite.keys"
    keys.write_text(f"AKIA-house\n{SECRET}\n")
    config_file = tmp_path / "camhub.toml"
    config_file.write_text(OFFSITE + 'credentials_file = "offsite.keys"\n')

    offsite = load_config(config_file).offsite

    assert offsite is not None and offsite.credentials_file == keys
    assert (offsite.access_key, offsite.secret_key) == ("AKIA-house", SECRET)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "offsite.credentials_file: cannot read"),
        ("only-the-access-key\n", "offsite.credentials_file: "),
        ("\n" + SECRET + "\n", "offsite.credentials_file: "),
    ],
)
def test_bad_offsite_credentials_file_is_named(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    keys = tmp_path / "offsite.keys"
    if content is not None:
        keys.write_text(content)
    config_file = tmp_path / "camhub.toml"
    config_file.write_text(OFFSITE + 'credentials_file = "offsite.keys"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(config_file)

    assert str(caught.value).startswith(problem) and SECRET not in str(caught.value)
