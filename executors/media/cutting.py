"""Media files: printable names for any file name, and cutting a segment out of a video with ffmpeg."""
import os
import subprocess
import tempfile
from pathlib import Path

from executors.errors import VideoError
from executors.media.ffmpeg_binary import FfmpegBinary, ffmpeg_path, find_ffmpeg

__all__ = ['cut_segment', 'ffmpeg_path', 'printable']  # ffmpeg_path: callers that need no flow.yml choice


def printable(name: str | os.PathLike) -> str:
    """A file name or path as text that prints and stores anywhere: bytes that are not UTF-8 become \\xNN.

    On Linux a name is bytes; Python holds one that is not UTF-8 as a str with lone surrogates
    (os.fsdecode), which opens the right file but cannot be printed, encoded as UTF-8 or put in SQLite text.
    """
    text = os.fspath(name)
    try:
        return os.fsencode(text).decode('utf-8', 'backslashreplace')
    except UnicodeError:  # surrogates that did not come from the file system's bytes
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def cut_segment(path: str | Path, start: float, end: float, ffmpeg: FfmpegBinary | None = None) -> bytes:
    """The part of a video from `start` to `end` seconds as MP4 bytes (H.264, AAC when it has sound).

    Re-encoded, not stream-copied, so it starts on the frame at `start` rather than on the
    keyframe before it. The temporary file is removed before returning. `ffmpeg`: the binary the
    Flow's loader uses (VideoLoader.ffmpeg), else what `auto` chooses.
    """
    if not 0 <= start < end:
        raise ValueError(f'a segment needs 0 <= start < end, not {start}-{end}')
    ffmpeg = ffmpeg or find_ffmpeg()
    with tempfile.TemporaryDirectory(prefix='vced-cut-') as folder:
        out = Path(folder) / 'segment.mp4'
        command = [ffmpeg.path, '-nostdin', '-v', 'error', '-ss', f'{start:.3f}', '-i', str(path),
                   '-t', f'{end - start:.3f}', '-map', '0:v:0', '-map', '0:a:0?',
                   '-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2',  # H.264 in yuv420p needs even sides
                   '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p',
                   '-c:a', 'aac', '-movflags', '+faststart', str(out)]
        result = subprocess.run(command, capture_output=True, text=True, errors='replace')
        if result.returncode != 0 or not out.is_file():
            tail = ' '.join(result.stderr.strip().splitlines()[-3:]) or f'ffmpeg exited with {result.returncode}'
            raise VideoError(f'{printable(Path(path).name)}: cannot cut {start:.2f}-{end:.2f} s: {tail}')
        return out.read_bytes()
