import subprocess

import numpy as np
import pytest

from executors.errors import VideoError
from executors.media import cut_segment, ffmpeg_path
from tests.factories import make_video

# Red for 3 s with a blue second from 1 s to 2 s, one keyframe only: a stream copy from 1 s
# would start on the red keyframe at 0 s.
BLUE_SECOND = "drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='between(t,1,1.999)'"
ONE_KEYFRAME = ('-c:v', 'libx264', '-preset', 'ultrafast', '-g', '1000', '-sc_threshold', '0')


def decoded_rgb(data: bytes, tmp_path) -> np.ndarray:
    """Every frame stored in an MP4 as a 4x4 RGB array (frames, 4, 4, 3), edit lists ignored.

    A stream copy hides the frames before its start with an edit list, which not every player honours.
    """
    path = tmp_path / 'decoded.mp4'
    path.write_bytes(data)
    raw = subprocess.run([ffmpeg_path(), '-v', 'error', '-ignore_editlist', '1', '-i', str(path), '-s', '4x4', '-f', 'rawvideo',
                          '-pix_fmt', 'rgb24', '-'], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 4, 4, 3)


def test_cut_starts_on_the_exact_frame_and_keeps_only_the_segment(tmp_path):
    video = make_video(tmp_path / 'red blue red.mp4', duration=3, rate=25, source='color=c=red',
                       codec_args=ONE_KEYFRAME, extra_args=('-vf', BLUE_SECOND))
    frames = decoded_rgb(cut_segment(video, 1.0, 2.0), tmp_path).astype(int)
    assert 24 <= len(frames) <= 26
    blue = (frames[..., 2] > 150) & (frames[..., 0] < 100)
    assert blue.all(axis=(1, 2)).all(), 'every frame of the cut, the first one included, is from the blue second'


def test_cut_of_an_odd_sized_video_with_sound(tmp_path):
    video = tmp_path / 'odd.mkv'
    subprocess.run([ffmpeg_path(), '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=161x121:rate=25:duration=2',
                    '-f', 'lavfi', '-i', 'sine=duration=2', '-c:v', 'ffv1', '-c:a', 'flac', str(video)],
                   check=True, capture_output=True)
    frames = decoded_rgb(cut_segment(video, 0.5, 1.5), tmp_path)
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
