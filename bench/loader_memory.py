"""Peak memory while indexing a long video: the loader alone, whole (every keyframe held) or in pieces
of chunk_frames, and the whole pipeline (decode, encode, store) through Library.index.

`python -m bench.loader_memory [--minutes 60] [--chunk-frames 256] [--model CHECKPOINT]`: a generated
video (64x64 testsrc at 1 fps, `--minutes` long) sampled at 1 keyframe/s (224 px RGB, 150 KB each)
goes (1) through VideoLoader /index into a consumer that drops each piece, as the encoder would after
embedding it, and (2) through flow.yml's whole pipeline into a new workspace, with `--model`'s CLIP
(default: a random one with ViT-B/32's 512-d embeddings and tiny towers: memory, not compute, is
measured, and the model's own size is counted in "before"). Each mode runs in a fresh process; its peak resident memory while indexing (VmHWM,
reset before) is printed against its resident memory before decoding (the model loaded).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from executors.documents import DocList, VideoDoc
from executors.media.cutting import ffmpeg_path
from executors.video_loader import VideoLoader

OUT = Path(__file__).resolve().parent / 'out'
FLOW = Path(__file__).resolve().parent.parent / 'flow.yml'
PIPELINE = -1  # --one's value for the whole pipeline


def long_video(minutes: float) -> Path:
    """A 64x64 testsrc at 1 fps, generated once into bench/out/."""
    path = OUT / f'testsrc-64px-1fps-{minutes:g}min.mp4'
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_path(), '-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=1',
                        '-t', str(minutes * 60), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
                        str(path)], check=True)
    return path


def resident_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


def reset_peak() -> None:
    """Start the peak (VmHWM) over from the current resident size (Linux 4.0+)."""
    Path('/proc/self/clear_refs').write_text('5')


def measure(video: Path, chunk_frames: int) -> dict:
    """Index `video` into a consumer that drops each piece; this process's memory before and at its peak."""
    with tempfile.TemporaryDirectory(prefix='vced-memory-') as workspace:
        loader = VideoLoader(workspace=workspace, chunk_frames=chunk_frames)
        reset_peak()
        before, started = resident_mb('VmRSS'), time.perf_counter()
        result = loader.index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
        pieces = [result] if chunk_frames == 0 else result
        frames = count = 0
        for docs in pieces:
            for doc in docs:
                frames, count = frames + len(doc.frames), count + 1
            del docs  # the encoder is done with this piece
        return {'chunk_frames': chunk_frames, 'keyframes': frames, 'pieces': count, 'before_mb': round(before),
                'peak_mb': round(resident_mb('VmHWM')), 'added_mb': round(resident_mb('VmHWM') - before),
                'seconds': round(time.perf_counter() - started, 1)}


def measure_pipeline(video: Path, model: str) -> dict:
    """Index `video` through flow.yml (Library.index: decode, encode, store) into a new workspace."""
    from library import Library

    with tempfile.TemporaryDirectory(prefix='vced-memory-') as workspace:
        if not model:
            from tests.factories import write_random_clip_checkpoint

            model = str(write_random_clip_checkpoint(Path(workspace) / 'tiny.pt', 'tiny-512'))
        with Library(FLOW, workspace=str(Path(workspace) / 'library'), model=model, asr='off') as library:
            library.warm_up()
            reset_peak()
            before, started = resident_mb('VmRSS'), time.perf_counter()
            videos = list(library.index([str(video)]))
            keyframes = sum(v.frame_count for v in library.videos())
            return {'chunk_frames': 'pipeline', 'keyframes': keyframes, 'pieces': videos[0].status,
                    'before_mb': round(before), 'peak_mb': round(resident_mb('VmHWM')),
                    'added_mb': round(resident_mb('VmHWM') - before), 'seconds': round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=60.0)
    parser.add_argument('--chunk-frames', type=int, default=256)
    parser.add_argument('--model', default='', help='CLIP checkpoint for the whole pipeline (default: tiny towers, 512-d)')
    parser.add_argument('--one', type=int, help=argparse.SUPPRESS)  # run one mode in this process
    args = parser.parse_args(argv)
    video = long_video(args.minutes)
    if args.one is not None:
        row = measure_pipeline(video, args.model) if args.one == PIPELINE else measure(video, args.one)
        print(json.dumps(row))
        return
    for mode in (0, args.chunk_frames, PIPELINE):
        run = subprocess.run([sys.executable, '-m', 'bench.loader_memory', '--minutes', str(args.minutes),
                              '--model', args.model, '--one', str(mode)], capture_output=True, text=True, check=True)
        row = json.loads(run.stdout.strip().splitlines()[-1])
        what = ('whole pipeline (Library.index, flow.yml)' if mode == PIPELINE
                else f"loader, chunk_frames {row['chunk_frames']:>4}")
        print(f"{args.minutes:g} min at 1 keyframe/s, {what}: {row['keyframes']} keyframes "
              f"({row['pieces']}), peak {row['peak_mb']} MB resident "
              f"(+{row['added_mb']} MB over {row['before_mb']} MB before decoding), {row['seconds']} s")


if __name__ == '__main__':
    main()
