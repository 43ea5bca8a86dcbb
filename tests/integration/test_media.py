import os
import subprocess

import numpy as np
import pytest

from executors.errors import VideoError
from executors.media.ffmpeg_binary import find_ffmpeg
from executors.media.cutting import cut_segment, printable
from tests.factories import make_video
from tests.ffmpegs import FFMPEGS, ffmpeg_choice, material_ffmpeg

# Red for 3 s with a blue second from 1 s to 2 s, one keyframe only: a stream copy from 1 s
# would start on the red keyframe at 0 s.
BLUE_SECOND = "drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='between(t,1,1.999)'"
ONE_KEYFRAME = ('-c:v', 'libx264', '-preset', 'ultrafast', '-g', '1000', '-sc_threshold', '0')


@pytest.fixture(params=FFMPEGS)
def ffmpeg(request):
    """Each ffmpeg the cutting must work with."""
    return find_ffmpeg(ffmpeg_choice(request.param))


def decoded_rgb(data: bytes, tmp_path) -> np.ndarray:
    """Every frame stored in an MP4 as a 4x4 RGB array (frames, 4, 4, 3), edit lists ignored.

    A stream copy hides the frames before its start with an edit list, which not every player honours.
    """
    path = tmp_path / 'decoded.mp4'
    path.write_bytes(data)
    raw = subprocess.run([material_ffmpeg(), '-v', 'error', '-ignore_editlist', '1', '-i', str(path), '-s', '4x4',
                          '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 4, 4, 3)


def test_cut_starts_on_the_exact_frame_and_keeps_only_the_segment(tmp_path, ffmpeg):
    video = make_video(tmp_path / 'red blue red.mp4', duration=3, rate=25, source='color=c=red',
                       codec_args=ONE_KEYFRAME, extra_args=('-vf', BLUE_SECOND))
    frames = decoded_rgb(cut_segment(video, 1.0, 2.0, ffmpeg), tmp_path).astype(int)
    assert 24 <= len(frames) <= 26
    blue = (frames[..., 2] > 150) & (frames[..., 0] < 100)
    assert blue.all(axis=(1, 2)).all(), 'every frame of the cut, the first one included, is from the blue second'


def test_cut_of_an_odd_sized_video_with_sound(tmp_path, ffmpeg):
    video = tmp_path / 'odd.mkv'
    subprocess.run([material_ffmpeg(), '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=161x121:rate=25:duration=2',
                    '-f', 'lavfi', '-i', 'sine=duration=2', '-c:v', 'ffv1', '-c:a', 'flac', str(video)],
                   check=True, capture_output=True)
    frames = decoded_rgb(cut_segment(video, 0.5, 1.5, ffmpeg), tmp_path)
    assert 24 <= len(frames) <= 26


def test_cut_leaves_no_temporary_file(tmp_path, monkeypatch):
    video = make_video(tmp_path / 'clip.mp4', duration=2)
    scratch = tmp_path / 'tmp'
    scratch.mkdir()
    monkeypatch.setattr('tempfile.tempdir', str(scratch))
    assert cut_segment(video, 0, 1)[4:8] == b'ftyp'
    with pytest.raises(VideoError):
        cut_segment(tmp_path / 'missing.mp4', 0, 1)
    assert list(scratch.iterdir()) == []


def test_cut_of_a_broken_file_names_the_file(tmp_path):
    broken = tmp_path / 'broken.mp4'
    broken.write_bytes(b'not a video at all')
    with pytest.raises(VideoError, match=r'^broken\.mp4: cannot cut 0\.00-1\.00 s: .+'):
        cut_segment(broken, 0, 1)


@pytest.mark.parametrize('start, end', [(2, 1), (1, 1), (-1, 1)])
def test_cut_rejects_an_empty_or_negative_range(tmp_path, start, end):
    with pytest.raises(ValueError, match='start < end'):
        cut_segment(tmp_path / 'clip.mp4', start, end)


def test_cut_of_a_file_whose_name_is_not_utf8(tmp_path, ffmpeg):
    name = os.fsdecode(b'caf\xe9 \xff.mp4')  # Latin-1 bytes, as old cameras and Windows archives write them
    try:
        video = make_video(tmp_path / name, duration=2)
    except (OSError, UnicodeError):
        pytest.skip('this file system takes UTF-8 names only')
    assert cut_segment(video, 0.5, 1.5, ffmpeg)[4:8] == b'ftyp'
    (tmp_path / name).write_bytes(b'not a video')
    with pytest.raises(VideoError) as error:
        cut_segment(tmp_path / name, 0, 1, ffmpeg)
    assert str(error.value).startswith('caf\\xe9 \\xff.mp4: cannot cut') and str(error.value).encode('utf-8')


def test_printable_names_print_anywhere():
    assert printable(os.fsdecode(b'/videos/caf\xe9.mp4')) == '/videos/caf\\xe9.mp4'
    assert printable('/videos/café 北京.mp4') == '/videos/café 北京.mp4'  # UTF-8 names stay as they are
    assert printable('broken \ud800 surrogate') == 'broken \\ud800 surrogate'
