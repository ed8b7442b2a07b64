"""Screenshots of sumo-gui assembled into an animated GIF (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["frames_to_gif"]


def frames_to_gif(
    frames: Sequence[str | Path], path: str | Path, frame_ms: float = 100.0, max_width: int = 640
) -> Path:
    """Write ``frames`` (PNG files, in order) as a looping GIF showing each for ``frame_ms`` ms.

    Frames wider than ``max_width`` pixels are scaled down (a GIF of full-size screenshots is
    tens of megabytes).
    """
    from PIL import Image

    if not frames:
        raise ValueError("no frames to animate")
    images = []
    for frame in frames:
        with Image.open(frame) as image:
            picture = image.convert("RGB")
        if picture.width > max_width:
            height = round(picture.height * max_width / picture.width)
            picture = picture.resize((max_width, height), Image.Resampling.LANCZOS)
        images.append(picture)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(frame_ms)),  # browsers play faster frames at 100 ms
        loop=0,
        optimize=False,
    )
    return path
