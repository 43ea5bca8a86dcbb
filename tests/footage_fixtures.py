"""A library of generated footage with copies (trimmed, re-encoded, resized, another frame rate,
letterboxed) and look-alikes (two videos of one still pattern), indexed once per test session with a
CLIP whose image tower tells scenes apart; shared by the CLI and page tests of issue 27."""
from pathlib import Path

import pytest

from flow import main
from tests.factories import _ffmpeg, make_video, write_discriminative_clip_checkpoint

# colours that keep moving, so every second looks unlike the others; drawn by geq, as ffmpeg's gradients
# source draws other colours on every run whatever its seed (the index, and which video a clip matched, varied)
MOVING = ("color=c=black:size=160x120:rate=25,geq=r='128+127*sin(2*PI*(X/W+T/5))'"
          ":g='128+127*sin(2*PI*(Y/H+T/7))':b='128+127*sin(2*PI*((X+Y)/(W+H)-T/3))'")
LETTERBOX = 'pad=iw:ih*4/3:0:(oh-ih)/2'  # black bars above and below: 12.5 % of the height each (16:9 in 4:3)


@pytest.fixture(scope='session')
def footage(tmp_path_factory) -> tuple[Path, list[str]]:
    """(the folder, with videos/ and the query clips, and the options --workspace and --model)."""
    root = tmp_path_factory.mktemp('footage')
    videos = root / 'videos'
    make_video(videos / 'mandelbrot.mp4', duration=12, size='160x120', rate=25, source='mandelbrot')
    _ffmpeg(['-f', 'lavfi', '-i', MOVING, '-t', '10', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
             str(videos / 'gradients.mp4')])
    make_video(videos / 'bars.mp4', duration=8, size='160x120', rate=25, source='smptebars')
    make_video(videos / 'bars_30fps.mp4', duration=8, size='160x120', rate=30, source='smptebars')
    # a copy trimmed at both ends, smaller, at 30 fps, re-encoded at a low quality
    _ffmpeg(['-i', str(videos / 'mandelbrot.mp4'), '-ss', '2', '-t', '7', '-vf', 'scale=96:72,fps=30',
             '-c:v', 'libx264', '-crf', '35', '-pix_fmt', 'yuv420p', str(videos / 'mandelbrot_excerpt.mp4')])
    # a letterboxed copy from 1 s on
    _ffmpeg(['-i', str(videos / 'mandelbrot.mp4'), '-ss', '1', '-vf', LETTERBOX, '-c:v', 'libx264',
             '-pix_fmt', 'yuv420p', str(videos / 'mandelbrot_letterboxed.mp4')])
    _ffmpeg(['-i', str(videos / 'gradients.mp4'), '-ss', '4', '-t', '3.2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
             str(root / 'clip.mp4')])
    _ffmpeg(['-i', str(videos / 'gradients.mp4'), '-ss', '4', '-t', '3.2', '-vf', LETTERBOX, '-c:v', 'libx264',
             '-pix_fmt', 'yuv420p', str(root / 'clip_letterboxed.mp4')])
    model = write_discriminative_clip_checkpoint(root / 'scenes.pt')
    common = ['--workspace', str(root / 'workspace'), '--model', str(model)]
    assert main(['index', str(videos), '--asr', 'off', *common]) == 0
    return root, common
