"""Draw the page's home-screen icons (hub/web/static/icon-*.png), once; the PNGs are
committed. The picture is the page's brand mark, a lens: a white ring around a white
dot on the accent colour.

Run: .venv/bin/python scripts/draw_icons.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STATIC = Path(__file__).resolve().parent.parent / "hub" / "web" / "static"
ACCENT_BGR = (0x78, 0x6F, 0x1F)  # #1f6f78, the page's --accent and the manifest's theme
WHITE_BGR = (255, 255, 255)
SUPERSAMPLE = 4  # drawn this much larger, then shrunk: smooth edges without a library


def lens(size: int, *, mark: float, corner: float) -> np.ndarray:
    """A `size`-pixel square BGRA icon: the lens `mark` of the size across, on the accent
    with corners rounded by `corner` of the size (0: a full square, as a maskable icon
    must be; the platform cuts its own shape)."""
    big = size * SUPERSAMPLE
    bgr = np.zeros((big, big, 3), np.uint8)
    alpha = np.zeros((big, big), np.uint8)
    radius = round(corner * big)
    _rounded_square(alpha, big, radius)
    bgr[:] = ACCENT_BGR
    centre = (big // 2, big // 2)
    outer = round(mark * big / 2)
    ring = round(outer * 0.2)
    cv2.circle(bgr, centre, outer - ring // 2, WHITE_BGR, ring, cv2.LINE_AA)
    cv2.circle(bgr, centre, round(outer * 0.42), WHITE_BGR, -1, cv2.LINE_AA)
    image = np.dstack([bgr, alpha])
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _rounded_square(alpha: np.ndarray, side: int, radius: int) -> None:
    if radius == 0:
        alpha[:] = 255
        return
    cv2.rectangle(alpha, (radius, 0), (side - 1 - radius, side - 1), 255, -1)
    cv2.rectangle(alpha, (0, radius), (side - 1, side - 1 - radius), 255, -1)
    for x in (radius, side - 1 - radius):
        for y in (radius, side - 1 - radius):
            cv2.circle(alpha, (x, y), radius, 255, -1, cv2.LINE_AA)


def main() -> None:
    # Maskable icons keep their picture inside the central 80 % circle (the safe zone);
    # an apple-touch-icon is opaque (iOS paints transparency black) and rounded by iOS.
    icons = {
        "icon-192.png": lens(192, mark=0.62, corner=0.18),
        "icon-512.png": lens(512, mark=0.62, corner=0.18),
        "icon-maskable-512.png": lens(512, mark=0.5, corner=0.0),
        "apple-touch-icon.png": lens(180, mark=0.56, corner=0.0)[:, :, :3],
    }
    for name, image in icons.items():
        path = STATIC / name
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise SystemExit(f"could not write {path}")
        print(f"{path}: {image.shape[1]}x{image.shape[0]}")


if __name__ == "__main__":
    main()
