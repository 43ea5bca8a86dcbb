"""ffmpeg: where the binary lives (the system's when installed, else imageio-ffmpeg's) and cutting a segment."""
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from executors.errors import VideoError


@functools.cache
def ffmpeg_path() -> str:
    """Path of the ffmpeg binary to run."""
    system = shutil.which('ffmpeg')
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def cut_segment(path: str | Path, start: float, end: float) -> bytes:
    """The part of a video from `start` to `end` seconds as MP4 bytes (H.264, AAC when it has sound).

    Re-encoded, not stream-copied, so it starts on the frame at `start` rather than on the
    keyframe before it. The temporary file is removed before returning.
    """
    if not 0 <= start < end:
        raise ValueError(f'a segment needs 0 <= start < end, not {start}-{end}')
    with tempfile.TemporaryDirectory(prefix='vced-cut-') as folder:
        out = Path(folder) / 'segment.mp4'
        command = [ffmpeg_path(), '-nostdin', '-v', 'error', '-ss', f'{start:.3f}', '-i', str(path),
                   '-t', f'{end - start:.3f}', '-map', '0:v:0', '-map', '0:a:0?',
                   '-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2',  # H.264 in yuv420p needs even sides
                   '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p',
                   '-c:a', 'aac', '-movflags', '+faststart', str(out)]
        result = subprocess.run(command, capture_output=True, text=True, errors='replace')
        if result.returncode != 0 or not out.is_file():
            tail = ' '.join(result.stderr.strip().splitlines()[-3:]) or f'ffmpeg exited with {result.returncode}'
            raise VideoError(f'{Path(path).name}: cannot cut {start:.2f}-{end:.2f} s: {tail}')
        return out.read_bytes()
