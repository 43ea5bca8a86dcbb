"""A video's duration, frame rate and displayed size, read from what `ffmpeg -i` prints.

imageio-ffmpeg ships no ffprobe, so the stream summary that ffmpeg writes to stderr when it
opens a file is the one source of metadata that always exists.
"""
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from executors.errors import VideoError
from executors.media.ffmpeg_binary import FfmpegBinary, find_ffmpeg
from executors.media.cutting import printable

# seconds: a container whose timestamps start later may state its duration from 0 (an MP4 edit list
# starting at 100000 s says 27:46:45 for 5 s); its packets then give the real span.
LATE_START = 1.0
# Still images that ffmpeg opens as one-frame "videos".
IMAGE_FORMATS = re.compile(r'^(image2|\w+_pipe)$')


@dataclass(frozen=True)
class VideoInfo:
    """What a video looks like when played: sizes are after rotation and non-square pixels."""

    duration: float  # seconds; 0.0 when the container does not say
    fps: float  # average frame rate; 0.0 when unknown
    width: int
    height: int
    rotation: int = 0  # degrees the player turns the picture (ffmpeg does it while decoding)

    def scaled(self, short_side: int) -> tuple[int, int]:
        """(width, height) with the shorter side at `short_side` and the aspect ratio kept."""
        if self.width <= self.height:
            return short_side, max(1, round(short_side * self.height / self.width))
        return max(1, round(short_side * self.width / self.height)), short_side


def probe(path: Path, ffmpeg: FfmpegBinary | None = None) -> VideoInfo:
    """Open `path` with ffmpeg (no decoding) and read its video stream's metadata.

    Raises VideoError naming the file when it is not a video ffmpeg can read.
    """
    ffmpeg = ffmpeg or find_ffmpeg()
    result = subprocess.run([ffmpeg.path, '-hide_banner', '-nostdin', '-i', str(path)],
                            capture_output=True, text=True, errors='replace')
    with open(path, 'rb') as f:
        head = f.read(12)
    info = parse_probe(result.stderr, printable(path.name), head)
    if info.duration <= 0 or _start(result.stderr) > LATE_START:  # a late start may be counted in the duration
        info = VideoInfo(demuxed_duration(path, ffmpeg), info.fps, info.width, info.height, info.rotation)
    return info


def parse_probe(stderr: str, name: str, head: bytes = b'') -> VideoInfo:
    """The first (non cover-art) video stream that `ffmpeg -i` describes in `stderr`.

    `head`, the file's first bytes, tells a cut-off MP4 from a file that never was one.
    """
    opened = re.search(r"^Input #0, ([^,\n]+(?:,[^ ,\n]+)*), from", stderr, re.M)
    if not opened:
        raise VideoError(f'{name}: {_open_failure(stderr, head)}')
    if IMAGE_FORMATS.match(opened.group(1)):
        raise VideoError(f'{name}: a still image, not a video')
    streams = re.split(r'^\s*Stream #0:', stderr, flags=re.M)[1:]
    video = next((s for s in streams if re.match(r'[^:]*: Video: ', s) and '(attached pic)' not in s), None)
    if video is None:
        kinds = sorted({m.group(1).lower() for s in streams for m in [re.match(r'[^:]*: (\w+): ', s)] if m})
        raise VideoError(f"{name}: no video stream ({' and '.join(kinds) + ' only' if kinds else 'the file holds no streams'})")
    header = video.splitlines()[0]
    unknown = re.match(r'[^:]*: Video: none \(([^ /)]+)', header)  # ffmpeg knows no decoder for this codec tag
    if unknown:
        raise VideoError(f'{name}: unsupported video codec ({unknown.group(1)}): ffmpeg cannot decode it')
    size = re.search(r', (\d+)x(\d+)\b', header)
    if not size:
        raise VideoError(f'{name}: the video stream has no picture size ({header.strip()[:120]})')
    width, height = int(size.group(1)), int(size.group(2))
    sar = re.search(r'\[?SAR (\d+):(\d+)', header)
    if sar and int(sar.group(1)) and int(sar.group(2)):
        width = round(width * int(sar.group(1)) / int(sar.group(2)))
    rotation = _rotation(video)
    if rotation % 180:
        width, height = height, width
    rate = re.search(r', ([\d.]+)(k?) (?:fps|tbr)\b', header)
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 0.0
    return VideoInfo(_duration(stderr), fps, width, height, rotation)


def demuxed_duration(path: Path, ffmpeg: FfmpegBinary) -> float:
    """Duration of a container that does not state it, or starts late: where its last video packet ends,
    counted from its first (ffmpeg starts the copied packets at 0; no decoding).

    framecrc lists each packet as `stream, dts, pts, duration, size, crc` after a `#tb 0: num/den`
    header, alike in every ffmpeg (the progress line's `time=` is the last packet's start in 5.1).
    """
    command = [ffmpeg.path, '-hide_banner', '-nostdin', '-v', 'error', '-i', str(path), '-map', '0:V:0',
               '-c', 'copy', '-f', 'framecrc', '-']
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, errors='replace') as process:
        return packets_end(process.stdout)


def packets_end(framecrc_lines) -> float:
    """The end in seconds (pts + duration) of the latest packet in framecrc output; 0.0 when there is none."""
    time_base, end = None, 0
    for line in framecrc_lines:
        if line.startswith('#tb 0:'):
            num, _, den = line.split(':', 1)[1].strip().partition('/')
            time_base = Fraction(int(num), int(den))
        elif not line.startswith('#') and (fields := [f.strip() for f in line.split(',')])[0] == '0':
            end = max(end, int(fields[2]) + int(fields[3]))
    return float(end * time_base) if time_base else 0.0


def _start(stderr: str) -> float:
    found = re.search(r'Duration: [^\n]*, start: (-?[\d.]+)', stderr)
    return float(found.group(1)) if found else 0.0


def _duration(stderr: str) -> float:
    found = re.search(r'Duration: (\d+):(\d+):([\d.]+)', stderr)
    return int(found.group(1)) * 3600 + int(found.group(2)) * 60 + float(found.group(3)) if found else 0.0


def _rotation(stream_block: str) -> int:
    """Display rotation: side data (ffmpeg 5+) or the old `rotate` tag, as 0, 90, 180 or 270."""
    found = (re.search(r'rotation of (-?[\d.]+) degrees', stream_block, re.I)
             or re.search(r'^\s*rotate\s*:\s*(-?[\d.]+)', stream_block, re.M))
    return round(float(found.group(1))) % 360 if found else 0


def _open_failure(stderr: str, head: bytes) -> str:
    """Why ffmpeg could not open a file, in a user's words."""
    if 'moov atom not found' in stderr and head[4:8] == b'ftyp':
        return 'truncated or corrupt: its MP4 index (moov atom) is missing'
    if 'Invalid data found when processing input' in stderr:
        return 'not a video file ffmpeg can read (unknown or corrupt data)'
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"ffmpeg cannot open it: {lines[-1].strip() if lines else 'no reason given'}"
