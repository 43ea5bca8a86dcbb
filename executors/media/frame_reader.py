"""One ffmpeg process per video that decodes, samples and scales, streaming RGB keyframes to Python.

The graph is  decode -> scdet (shot cuts, every decoded frame) -> select (the sampling strategy)
-> scale (short side = the model's input) -> showinfo (each keyframe's pts) -> rawvideo rgb24
on stdout. Keyframes arrive at model resolution through the pipe; their presentation times and
the cut times arrive as log lines on stderr, read by a thread.
"""
import functools
import logging
import math
import queue
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import FfmpegBinary, find_ffmpeg, release_of
from executors.media.ffmpeg_log import FfmpegLog
from executors.media.cutting import printable
from executors.media.sampling import Sampling
from executors.media.probe import VideoInfo, probe

log = logging.getLogger(__name__)

TIME_WAIT = 60.0  # seconds a keyframe may wait for its time from the log (it comes before the frame's bytes)


@dataclass(frozen=True)
class Decoder:
    """How hard the decoder works (measured in bench/loader.py)."""

    threads: int = 0  # decoding threads; 0 lets ffmpeg use every core
    skip_nonref: bool = True  # uniform/count: skip B-frames nothing references (see Sampling.decoder_options)


def ffmpeg_command(path: Path, info: VideoInfo, sampling: Sampling, size: int, decoder: Decoder,
                   ffmpeg: FfmpegBinary) -> list[str]:
    """The ffmpeg argument list that streams `path`'s keyframes as rgb24 at short side `size`.

    A plain list (no shell, no ffmpeg-python): a file name that is not UTF-8 reaches ffmpeg as its
    own bytes through subprocess's os.fsencode.
    """
    width, height = info.scaled(size)
    options = {'threads': decoder.threads, **sampling.decoder_options(decoder.skip_nonref)}
    graph = ','.join([f'scdet=threshold={100 * sampling.scene_threshold!r}',  # its score is select's scene x 100
                      'select=' + sampling.select_expression(info.duration).replace(',', r'\,'),
                      f'scale={width}:{height}:flags=bicubic', 'showinfo'])
    output = {'f': 'rawvideo', 'pix_fmt': 'rgb24', **passthrough_option(ffmpeg.version)}
    return [ffmpeg.path, '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'level+info', *_arguments(options),
            '-i', str(path), '-filter_complex', f'[0:V:0]{graph}[keyframes]',  # V: the main video, never cover art
            '-map', '[keyframes]', *_arguments(output), 'pipe:']


def passthrough_option(version: str) -> dict[str, str]:
    """Keep each selected frame once with its own time: rawvideo output would otherwise be made
    constant-rate (frames duplicated). ffmpeg 5.1 renamed -vsync to -fps_mode; 9.0 dropped -vsync."""
    release = release_of(version)
    old = release is not None and release < (5, 1)
    return {'vsync': 'passthrough'} if old else {'fps_mode': 'passthrough'}


def _arguments(options: dict) -> list[str]:
    return [text for key, value in options.items() for text in (f'-{key}', str(value))]


class FrameReader:
    """Iterate over (timestamp seconds, RGB uint8 H x W x 3) keyframes; `shots` holds the cut times after.

    Use as a context manager: leaving it early stops ffmpeg. Raises VideoError naming the file
    when ffmpeg fails, the file is truncated, no frame could be decoded, or ffmpeg's log does not
    give the keyframes' times or the cuts in a form this reader knows (then naming the ffmpeg).
    """

    def __init__(self, path: Path, info: VideoInfo, sampling: Sampling, size: int, decoder: Decoder = Decoder(),
                 ffmpeg: FfmpegBinary | None = None):
        self.name = printable(path.name)
        if sampling.strategy == 'count' and info.duration <= 0:
            raise VideoError(f'{self.name}: its duration is unknown, and count sampling needs it (use uniform)')
        self.ffmpeg = ffmpeg or find_ffmpeg()
        self.width, self.height = info.scaled(size)
        self.command = ffmpeg_command(path, info, sampling, size, decoder, self.ffmpeg)
        self.log = FfmpegLog()
        self._times: queue.Queue = queue.Queue()
        self._partial = False
        self._process = None
        self._stderr_thread = None

    @property
    def shots(self) -> list[float]:
        """Cut times in seconds (complete once the frames are all read)."""
        return self.log.shots

    def __enter__(self) -> 'FrameReader':
        self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name=f'ffmpeg-log {self.name}', daemon=True)
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
            try:  # showinfo logs a keyframe before it reaches the pipe: a missing line is a log we cannot read
                timestamp = self._times.get(timeout=TIME_WAIT)
            except queue.Empty:
                timestamp = None
            if timestamp is None or math.isnan(timestamp):
                raise self._unreadable_log(f'keyframe {count + 1} came without a readable time')
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
        if self.log.unreadable:
            raise self._unreadable_log('a keyframe time or a shot cut could not be read')
        if self.log.truncated:
            raise VideoError(f'{self.name}: truncated: the file ends before its last frame')
        if count == 0:
            raise self._error('no frame could be decoded')
        if self.log.damaged:
            log.warning('%s: the decoder concealed %d damaged frame(s)', self.name, self.log.damaged)

    def _read_stderr(self) -> None:
        """Hand each keyframe's time to the frame loop; the log keeps the cuts and complaints."""
        try:
            for raw in self._process.stderr:
                timestamp = self.log.read(raw.decode('utf-8', 'replace').rstrip())
                if timestamp is not None:
                    self._times.put(timestamp)
        finally:
            self._process.stderr.close()
            self._times.put(None)

    def _error(self, reason: str) -> VideoError:
        """VideoError with the reason and ffmpeg's last complaints."""
        detail = '; '.join(self.log.tail)
        return VideoError(f'{self.name}: {reason}' + (f' (ffmpeg: {detail})' if detail else ''))

    def _unreadable_log(self, reason: str) -> VideoError:
        line = self.log.unreadable[:160]
        return VideoError(f'{self.name}: {reason} from the log of {self.ffmpeg}'
                          + (f': {line!r}' if line else ': no showinfo line'))


def frame_at(path: Path, info: VideoInfo, seconds: float, size: int, ffmpeg: FfmpegBinary) -> np.ndarray:
    """The picture shown `seconds` into the video, as RGB uint8 at short side `size` (as the keyframes are)."""
    width, height = info.scaled(size)
    command = [ffmpeg.path, '-hide_banner', '-nostdin', '-v', 'error', '-ss', f'{seconds:.3f}', '-i', str(path),
               '-map', '0:V:0', '-frames:v', '1', '-vf', f'scale={width}:{height}:flags=bicubic',
               '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:']
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or len(result.stdout) != width * height * 3:
        detail = result.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:] or ['no picture']
        raise VideoError(f'{path.name}: cannot decode the frame at {seconds:.3f} s ({detail[0][:160]})')
    return np.frombuffer(result.stdout, dtype=np.uint8).reshape(height, width, 3)


@functools.lru_cache(maxsize=8)
def check_log_format(ffmpeg: FfmpegBinary) -> None:
    """Make sure this reader understands `ffmpeg`'s log: a generated clip with one cut must give its keyframe
    times and the cut. ConfigError naming the ffmpeg otherwise (it would index every video without its shots).
    """
    with tempfile.TemporaryDirectory(prefix='vced-ffmpeg-check-') as folder:
        clip = Path(folder) / 'two shots.nut'
        shots = [f'color=c={colour}:size=32x32:rate=10:duration=1' for colour in ('black', 'white')]
        generate = [ffmpeg.path, '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', shots[0], '-f', 'lavfi', '-i', shots[1],
                    '-filter_complex', '[0:v][1:v]concat=n=2:v=1:a=0', '-c:v', 'rawvideo', '-pix_fmt', 'yuv420p', str(clip)]
        made = subprocess.run(generate, capture_output=True, text=True, errors='replace')
        if made.returncode != 0:
            raise ConfigError(f'{ffmpeg}: cannot generate a test clip: {made.stderr.strip()[-200:]}')
        try:
            with FrameReader(clip, probe(clip, ffmpeg), Sampling('uniform', fps=1.0), 16, ffmpeg=ffmpeg) as reader:
                times = [timestamp for timestamp, _ in reader]
        except VideoError as e:
            raise ConfigError(f'{ffmpeg}: cannot decode a test clip: {e}') from e
    if times != [0.0, 1.0] or reader.shots != [1.0]:
        raise ConfigError(f'{ffmpeg}: its log does not give keyframe times and shot cuts as VCED reads them '
                          f'(keyframes at {times}, cuts at {reader.shots} where 0, 1 and 1 were expected)')
