"""Keyframes again, at a resolution text can be read at: the loader's keyframes are CLIP's 224 pixels.

One ffmpeg process per batch of times seeks close to the first, skipping the frames nothing references
(the loader's uniform sampling lands on referenced frames), selects the frames at exactly those times
and streams them as RGB, with the longer side at most `longest` pixels. When that misses a frame (a
stream that overshoots its seek, a keyframe on an unreferenced frame), the batch is decoded again
from the start, every frame.
"""
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np

from executors.errors import VideoError
from executors.media.cutting import printable
from executors.media.ffmpeg_binary import FfmpegBinary
from executors.media.frame_reader import passthrough_option

SEEK_MARGIN = 1.0  # seconds the seek lands before the first wanted frame
BATCH_BYTES = 96 * 2 ** 20  # frames held by one ffmpeg process (35 at 1280x720, 16 at 1920x1080; at least MIN_BATCH)
MIN_BATCH = 8
GAP = 4.0  # seconds between wanted frames past which a new process seeks rather than decoding through
TOLERANCE = 0.002  # seconds between a wanted time and a decoded frame's (the loader read the same pts)


def frame_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) with the longer side at most `longest`, even, the aspect ratio kept."""
    scale = min(1.0, longest / max(width, height, 1))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def sharp_frames(path: Path, times: list[float], size: tuple[int, int], ffmpeg: FfmpegBinary) -> Iterator[np.ndarray]:
    """The frames of `path` at `times` (ascending seconds, as the loader gave them), RGB uint8 of `size`,
    decoded a batch at a time (a batch is held until all its frames are there). VideoError when ffmpeg
    cannot give all of them.
    """
    for batch in batches(times, max(MIN_BATCH, BATCH_BYTES // (size[0] * size[1] * 3))):
        frames = list(_decode(path, batch, size, ffmpeg, max(0.0, batch[0] - SEEK_MARGIN), skip=True))
        if len(frames) < len(batch):
            frames = list(_decode(path, batch, size, ffmpeg, 0.0, skip=False))
        if len(frames) < len(batch):
            raise VideoError(f'{printable(path.name)}: ffmpeg gave {len(frames)} of {len(batch)} keyframes '
                             f'from {batch[0]:.3f} s to read text from')
        yield from frames


def batches(times: list[float], most: int) -> Iterator[list[float]]:
    """`times` in runs of at most `most` decoded by one process: a run ends where the next time is more than GAP
    seconds on (seeking there costs less than decoding the frames between; each process also pays a seek)."""
    batch: list[float] = []
    for time in times:
        if batch and (len(batch) == most or time - batch[-1] > GAP):
            yield batch
            batch = []
        batch.append(time)
    if batch:
        yield batch


def _decode(path: Path, times: list[float], size: tuple[int, int], ffmpeg: FfmpegBinary,
            start: float, skip: bool) -> Iterator[np.ndarray]:
    wanted = '+'.join(f'lt(abs(t-{t - start:.6f})\\,{TOLERANCE})' for t in times)
    width, height = size
    # reading stops a second past the last wanted frame: ffmpeg holds each frame it outputs until the next one,
    # and without an end it would decode the rest of the video for the last (a long video: every batch, to its end)
    command = [ffmpeg.path, '-hide_banner', '-nostdin', '-v', 'error', *(['-ss', f'{start:.6f}'] if start else []),
               '-t', f'{times[-1] - start + SEEK_MARGIN:.6f}', *(['-skip_frame', 'noref'] if skip else []),
               '-i', str(path), '-map', '0:V:0',
               '-vf', f"select='{wanted}',scale={width}:{height}:flags=area",
               *_passthrough(ffmpeg), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:']
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for _ in times:
            data = process.stdout.read(width * height * 3)
            if len(data) < width * height * 3:
                return
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def _passthrough(ffmpeg: FfmpegBinary) -> list[str]:
    return [text for key, value in passthrough_option(ffmpeg.version).items() for text in (f'-{key}', value)]
