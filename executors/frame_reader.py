"""One ffmpeg process per video that decodes, samples and scales, streaming RGB keyframes to Python.

The graph is  decode -> scdet (shot cuts, every decoded frame) -> select (the sampling strategy)
-> scale (short side = the model's input) -> showinfo (each keyframe's pts) -> rawvideo rgb24
on stdout. Keyframes arrive at model resolution through the pipe; their presentation times and
the cut times arrive as log lines on stderr, read by a thread.
"""
import collections
import functools
import logging
import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from executors.errors import VideoError
from executors.media import ffmpeg_path
from executors.sampling import Sampling
from executors.video_probe import VideoInfo

log = logging.getLogger(__name__)

# ffmpeg runs with `-loglevel level+info`: every line carries its level, as in `[Parsed_showinfo_3 @ 0x..] [info] n: ...`
TIME_BASE = re.compile(r'^\[Parsed_showinfo_\d+ @ \w+\] \[info\] config in time_base: (\d+)/(\d+)')
FRAME_PTS = re.compile(r'^\[Parsed_showinfo_\d+ @ \w+\] \[info\] n:\s*\d+ pts:\s*(-?\d+)\s+pts_time:(\S+)')
CUT_TIME = re.compile(r'^\[Parsed_scdet_\d+ @ \w+\] \[info\] lavfi\.scd\.score: [\d.]+, lavfi\.scd\.time: (-?[\d.]+)')
PROBLEM = re.compile(r'\[(warning|error|fatal)\] ')
CONTEXT = re.compile(r'^(\[[^\]]*\] )+')  # `[h264 @ 0x..] [error] ` before a message


@dataclass(frozen=True)
class Decoder:
    """How hard the decoder works (measured in bench/loader.py)."""

    threads: int = 0  # decoding threads; 0 lets ffmpeg use every core
    skip_nonref: bool = True  # uniform/count: skip B-frames nothing references (see Sampling.decoder_options)


def ffmpeg_command(path: Path, info: VideoInfo, sampling: Sampling, size: int, decoder: Decoder) -> list[str]:
    """The ffmpeg argument list that streams `path`'s keyframes as rgb24 at short side `size`."""
    width, height = info.scaled(size)
    options = {'threads': decoder.threads, **sampling.decoder_options(decoder.skip_nonref)}
    stream = ffmpeg.input(str(path), **options)['V:0']  # the main video stream, never cover art
    stream = stream.filter('scdet', threshold=100 * sampling.scene_threshold)  # its score is select's scene x 100
    stream = stream.filter('select', sampling.select_expression(info.duration))
    stream = stream.filter('scale', width, height, flags='bicubic').filter('showinfo')
    output = stream.output('pipe:', format='rawvideo', pix_fmt='rgb24', **passthrough_option(ffmpeg_version()))
    return output.global_args('-hide_banner', '-nostdin', '-nostats', '-loglevel', 'level+info').compile(cmd=ffmpeg_path())


@functools.cache
def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version`."""
    result = subprocess.run([ffmpeg_path(), '-version'], capture_output=True, text=True, errors='replace')
    return result.stdout.partition('\n')[0]


def passthrough_option(version: str) -> dict[str, str]:
    """Keep each selected frame once with its own time: rawvideo output would otherwise be made
    constant-rate (frames duplicated). ffmpeg 5.1 renamed -vsync to -fps_mode; 9.0 dropped -vsync."""
    release = re.match(r'ffmpeg version n?(\d+)\.(\d+)', version)
    old = release and (int(release.group(1)), int(release.group(2))) < (5, 1)
    return {'vsync': 'passthrough'} if old else {'fps_mode': 'passthrough'}


class FrameReader:
    """Iterate over (timestamp seconds, RGB uint8 H x W x 3) keyframes; `shots` holds the cut times after.

    Use as a context manager: leaving it early stops ffmpeg. Raises VideoError naming the file
    when ffmpeg fails, the file is truncated or no frame could be decoded.
    """

    def __init__(self, path: Path, info: VideoInfo, sampling: Sampling, size: int, decoder: Decoder = Decoder()):
        if sampling.strategy == 'count' and info.duration <= 0:
            raise VideoError(f'{path.name}: its duration is unknown, and count sampling needs it (use uniform)')
        self.path = path
        self.width, self.height = info.scaled(size)
        self.command = ffmpeg_command(path, info, sampling, size, decoder)
        self.shots: list[float] = []
        self._times: queue.Queue = queue.Queue()
        self._tail: collections.deque = collections.deque(maxlen=3)
        self._truncated = False
        self._partial = False
        self._damaged = 0
        self._process = None
        self._stderr_thread = None

    def __enter__(self) -> 'FrameReader':
        self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name=f'ffmpeg-log {self.path.name}',
                                               daemon=True)
        self._stderr_thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdout.close()
        self._stderr_thread.join()

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        count = 0
        while True:
            frame = self._read_frame()
            if frame is None:
                break
            timestamp = self._times.get()
            if timestamp is None:
                raise RuntimeError(f'{self.path.name}: ffmpeg sent a frame without its showinfo line')
            count += 1
            yield timestamp, frame
        self._finish(count)

    def _read_frame(self) -> np.ndarray | None:
        frame = np.empty((self.height, self.width, 3), np.uint8)
        view, filled = memoryview(frame).cast('B'), 0
        while filled < len(view):
            n = self._process.stdout.readinto(view[filled:])
            if not n:
                break
            filled += n
        self._partial = 0 < filled < len(view)
        return frame if filled == len(view) else None

    def _finish(self, count: int) -> None:
        returncode = self._process.wait()
        self._stderr_thread.join()
        if returncode != 0 or self._partial:
            raise self._error(f'ffmpeg failed (exit status {returncode})')
        if self._truncated:
            raise VideoError(f'{self.path.name}: truncated: the file ends before its last frame')
        if count == 0:
            raise self._error('no frame could be decoded')
        if self._damaged:
            log.warning('%s: the decoder concealed %d damaged frame(s)', self.path.name, self._damaged)

    def _read_stderr(self) -> None:
        """Sort ffmpeg's log lines: keyframe times, cut times, and the rest for error messages."""
        time_base = None
        try:
            for raw in self._process.stderr:
                line = raw.decode('utf-8', 'replace').rstrip()
                if match := FRAME_PTS.match(line):  # pts_time is rounded to 6 digits: exact pts x time base first
                    pts, pts_time = match.groups()
                    self._times.put(float(int(pts) * time_base) if time_base else float(pts_time))
                elif match := TIME_BASE.match(line):
                    time_base = Fraction(int(match.group(1)), int(match.group(2)))
                elif match := CUT_TIME.match(line):
                    if float(match.group(1)) > 0:
                        self.shots.append(float(match.group(1)))
                elif PROBLEM.search(line):
                    self._tail.append(CONTEXT.sub('', line))
                    self._truncated |= 'partial file' in line
                    self._damaged += 'corrupt decoded frame' in line
        finally:
            self._process.stderr.close()
            self._times.put(None)

    def _error(self, reason: str) -> VideoError:
        """VideoError with the reason and ffmpeg's last complaints."""
        detail = '; '.join(self._tail)
        return VideoError(f'{self.path.name}: {reason}' + (f' (ffmpeg: {detail})' if detail else ''))
