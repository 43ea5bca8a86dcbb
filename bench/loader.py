"""VideoLoader decode speed: video-seconds decoded per wall second, per strategy and decoder option.

The video is generated: 1280x720 30 fps testsrc2 with temporal noise, H.264 by x264 `veryfast`
(B-frames, deblocking, CABAC, ~5 Mb/s, like a phone's), 5 minutes (`--quick`: 6 s), cached in
bench/out/. Baselines: every frame written to a JPEG file (a CLIP4Clip-based thesis saved
keyframes as images) and the reference VCED loader's way, 1 fps full-resolution RGB piped into
memory and resized in Python. Faithfulness of a decoder option: PSNR of its keyframes against an
exact decode of the same frames (the first 20 s).
"""
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image

from bench.common import Result, markdown_table
from executors.documents import DocList, VideoDoc
from executors.media.frame_reader import Decoder, FrameReader
from executors.media.cutting import ffmpeg_path
from executors.media.sampling import Sampling
from executors.video_loader import VideoLoader
from executors.media.probe import probe

OUT = Path(__file__).resolve().parent / 'out'
SIZE = 224
FAITHFUL_WINDOW = 20.0  # seconds compared frame by frame with an exact decode


def noisy_video(seconds: float) -> Path:
    """The benchmark video, generated once and kept in bench/out/."""
    path = OUT / f'noisy-720p30-{seconds:g}s.mp4'
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix('.partial.mp4')
        subprocess.run([ffmpeg_path(), '-y', '-v', 'error', '-f', 'lavfi', '-i',
                        'testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t', '-t', str(seconds),
                        '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', str(partial)], check=True)
        partial.rename(path)
    return path


def read_keyframes(video: Path, sampling: Sampling, decoder: Decoder = Decoder(), extra_input_args=()) -> dict:
    """{timestamp: RGB keyframe} from one FrameReader run (`extra_input_args` go before -i)."""
    reader = FrameReader(video, probe(video), sampling, SIZE, decoder)
    reader.command[1:1] = list(extra_input_args)
    with reader:
        return {round(t, 4): rgb for t, rgb in reader}


def load(video: Path, strategy: str, workspace: str) -> VideoDoc:
    """The whole VideoLoader: hash, probe, decode, thumbnails."""
    video_doc, = VideoLoader(workspace=workspace, strategy=strategy, chunk_frames=0).index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
    if video_doc.status == 'failed':
        raise RuntimeError(video_doc.error)
    return video_doc


def every_frame_to_jpeg(video: Path) -> int:
    """Decode every frame to a full-resolution JPEG file; the number of files."""
    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        subprocess.run([ffmpeg_path(), '-v', 'error', '-i', str(video), '-q:v', '2', '-fps_mode', 'passthrough',
                        str(Path(folder) / '%06d.jpg')], check=True)
        return len(list(Path(folder).iterdir()))


def vced_frames(video: Path, width: int, height: int) -> list[np.ndarray]:
    """The reference VCED loader: fps=1 full-resolution RGB, all of it in memory, resized in Python."""
    out, _ = (ffmpeg.input(str(video)).output('pipe:', format='rawvideo', pix_fmt='rgb24', fps_mode='passthrough',
                                               vf='fps=1').run(cmd=ffmpeg_path(), capture_stdout=True, quiet=True))
    frames = np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)
    small = round(SIZE * width / height)
    return [np.asarray(Image.fromarray(f).resize((small, SIZE), Image.BICUBIC)) for f in frames]


def min_psnr(frames: dict, reference: dict) -> float:
    """Lowest PSNR (dB) of `frames` against the reference frames with the same timestamps."""
    worst = math.inf
    for t, rgb in frames.items():
        if t in reference:
            mse = np.mean((rgb.astype(np.float32) - reference[t].astype(np.float32)) ** 2)
            worst = min(worst, 10 * math.log10(255 ** 2 / mse) if mse else math.inf)
    return worst


def speed(seconds: float, work) -> tuple[float, object]:
    """(video-seconds per wall second, what `work()` returned)."""
    started = time.perf_counter()
    value = work()
    return seconds / (time.perf_counter() - started), value


def run(quick: bool = False) -> list[Result]:
    seconds = 6 if quick else 300
    video = noisy_video(seconds)
    info = probe(video)
    section = f'decode {seconds} s of 1280x720 30 fps H.264 (video-s per s)'
    jpeg = 'every frame to JPEG files'
    rate, files = speed(seconds, lambda: every_frame_to_jpeg(video))
    results = [Result(section, jpeg, rate, 'x', note=f'{files} files')]
    rate, frames = speed(seconds, lambda: vced_frames(video, info.width, info.height))
    results.append(Result(section, 'VCED: 1 fps full-res RGB into memory', rate, 'x', baseline=jpeg,
                          note=f'{len(frames)} frames, {len(frames) * info.width * info.height * 3 / 1e6:.0f} MB held at once'))
    del frames
    for strategy in ('uniform', 'count', 'scene', 'iframe'):
        with tempfile.TemporaryDirectory(dir=OUT) as workspace:
            rate, loaded = speed(seconds, lambda: load(video, strategy, workspace))
        results.append(Result(section, f'VideoLoader {strategy}', rate, 'x', baseline=jpeg,
                              note=f'{len(loaded.frames)} keyframes at {SIZE} px, {len(loaded.shots)} cuts'))

    window = min(seconds, FAITHFUL_WINDOW)
    exact = read_keyframes(video, Sampling('uniform', fps=1000.0), Decoder(skip_nonref=False), ('-t', f'{window:g}'))
    section = f'decoder options, uniform 1 fps (faithfulness over the first {window:g} s)'
    every = 'decode every frame'
    for name, decoder, extra in [
        (every, Decoder(skip_nonref=False), ()),
        ('skip unreferenced frames (adopted)', Decoder(skip_nonref=True), ()),
        ('skip unreferenced, 1 thread', Decoder(threads=1, skip_nonref=True), ()),
        ('skip unreferenced + skip_loop_filter (not adopted)', Decoder(skip_nonref=True), ('-skip_loop_filter', 'all')),
    ]:
        rate, keyframes = speed(seconds, lambda: read_keyframes(video, Sampling('uniform'), decoder, extra))
        worst = min_psnr({t: f for t, f in keyframes.items() if t < window}, exact)
        note = 'bit-identical to an exact decode' if worst == math.inf else f'PSNR >= {worst:.1f} dB vs an exact decode'
        results.append(Result(section, name, rate, 'x', baseline='' if name == every else every, note=note))
    return results


if __name__ == '__main__':
    print(markdown_table(run(quick='--quick' in sys.argv[1:])))
