import os
import random
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from executors.documents import DocList, VideoDoc
from executors.errors import ConfigError
from executors.media.frame_reader import passthrough_option
from executors.video_loader import VideoLoader, file_sha256
from executors.media.probe import parse_probe
from library.pipeline import Flow
from tests.factories import concat_videos, make_video
from tests.ffmpegs import FFMPEGS, ffmpeg_choice, material_ffmpeg

RATE = 20
# Frame n of a ramp video is flat grey with luma 16 + 5n: its pixels say which frame it is.
RAMP = "geq=lum='16+5*N':cb=128:cr=128"
LOSSLESS = ('-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0')
WITH_B_FRAMES = ('-c:v', 'libx264', '-preset', 'veryfast', '-qp', '0', '-bf', '3')


def ramp_video(path, duration=2.0, codec_args=LOSSLESS, then='', extra_args=()):
    """A 64x48 ramp at 20 fps; `then` filters follow the ramp (at most 40 frames: 16 + 5 * 39 < 235)."""
    return make_video(path, duration=duration, size='64x48', rate=RATE, source='color=c=black',
                      codec_args=codec_args, extra_args=('-vf', f'{RAMP},{then}' if then else RAMP, *extra_args))


def frame_number(tensor: np.ndarray) -> int:
    """Which ramp frame a decoded RGB keyframe shows (studio-range luma back to its step)."""
    return round(float(tensor.mean()) * 219 / 255 / 5)


def index(loader: VideoLoader, *paths, **parameters) -> list[VideoDoc]:
    """Each video whole (these videos are shorter than a piece of chunk_frames keyframes)."""
    docs = DocList[VideoDoc]([VideoDoc(uri=str(p)) for p in paths])
    result = loader.index(docs, parameters=parameters)
    return list(result) if isinstance(result, DocList) else [doc for piece in result for doc in piece]


def timestamps(video: VideoDoc) -> list[float]:
    return [round(f.timestamp, 4) for f in video.frames]


@pytest.fixture(params=FFMPEGS)
def ffmpeg(request) -> str:
    """Each ffmpeg the loader must work with: a test taking this fixture runs once with each."""
    return ffmpeg_choice(request.param)


def staged_files(workspace) -> list:
    """Every file under the workspace's thumbnails/ (staging folders included)."""
    folder = workspace / 'thumbnails'
    return [p for p in folder.rglob('*') if p.is_file()] if folder.exists() else []


@pytest.fixture(scope='module')
def ramp(tmp_path_factory):
    return ramp_video(tmp_path_factory.mktemp('ramp') / 'ramp.mp4')


@pytest.fixture(scope='module')
def cuts(tmp_path_factory):
    """Three distinct shots at 25 fps: cuts at 1.0 s and 2.2 s."""
    folder = tmp_path_factory.mktemp('cuts')
    parts = [make_video(folder / f'{i}.mp4', duration=d, size='64x48', rate=25, source=s)
             for i, (s, d) in enumerate([('smptebars', 1.0), ('testsrc2', 1.2), ('color=c=darkgreen', 0.8)])]
    return concat_videos(folder / 'cuts.mp4', parts)


# ----------------------------------------------------------------------------- timestamps


def test_uniform_takes_the_first_frame_at_or_after_each_slot_with_its_own_time(ramp, workspace, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, fps=3), ramp)
    assert video.status == '' and video.error == ''
    # slots open at k/3 s; frames are 1/20 s apart: 0, 0.35, 0.7, 1.0, 1.35, 1.7
    assert timestamps(video) == [0.0, 0.35, 0.7, 1.0, 1.35, 1.7]
    for frame in video.frames:
        assert frame_number(frame.tensor) == round(frame.timestamp * RATE)
    assert (video.duration, video.fps, video.width, video.height) == (2.0, 20.0, 64, 48)


def test_count_spaces_frames_evenly_at_the_centres_of_equal_spans(ramp, workspace, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy='count', count=5), ramp)
    targets = [(k + 0.5) * 2.0 / 5 for k in range(5)]  # 0.2, 0.6, 1.0, 1.4, 1.8
    assert len(video.frames) == 5
    for frame, target in zip(video.frames, targets):
        assert target <= frame.timestamp < target + 1 / RATE
        assert frame_number(frame.tensor) == round(frame.timestamp * RATE)


def test_variable_frame_rate_keeps_each_frames_true_time(tmp_path, workspace, ffmpeg):
    # 20 frames at 20 fps, then 20 frames at 4 fps: frame n is shown at n/20 s, then 1 + (n - 20)/4 s
    vfr = ramp_video(tmp_path / 'vfr.mp4', duration=6, then="trim=end_frame=40,setpts='if(lt(N,20),N/20,1+(N-20)/4)/TB'",
                     extra_args=('-fps_mode', 'vfr'))
    true_time = [n / 20 if n < 20 else 1 + (n - 20) / 4 for n in range(40)]
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, fps=1.5), vfr)
    # the first frame at or after each k/1.5 s
    assert timestamps(video) == [0.0, 0.7, 1.5, 2.0, 2.75, 3.5, 4.0, 4.75, 5.5]
    for frame in video.frames:
        assert true_time[frame_number(frame.tensor)] == pytest.approx(frame.timestamp, abs=1e-3)


def test_times_count_from_the_start_of_the_file(ramp, tmp_path, workspace, ffmpeg):
    run = lambda *args: subprocess.run([material_ffmpeg(), '-y', '-v', 'error', *args], check=True)
    transport = tmp_path / 'starts at 11.4 s.ts'  # MPEG-TS clocks never start at 0
    run('-i', str(ramp), '-c', 'copy', '-output_ts_offset', '10', str(transport))
    late = tmp_path / 'picture starts after the sound.mp4'
    run('-f', 'lavfi', '-i', 'sine=duration=3', '-itsoffset', '0.5', '-i', str(ramp), '-map', '0:a', '-map', '1:v',
        '-c:v', 'copy', '-c:a', 'aac', str(late))
    loader = VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg)
    ts, delayed = index(loader, transport, late)
    assert timestamps(ts) == [0.0, 1.0] and [frame_number(f.tensor) for f in ts.frames] == [0, 20]
    assert timestamps(delayed) == [0.5, 1.0, 2.0] and [frame_number(f.tensor) for f in delayed.frames] == [0, 10, 30]


def test_a_recording_without_a_duration_in_its_header_is_measured(ramp, tmp_path, workspace, ffmpeg):
    live = tmp_path / 'live.mkv'  # Matroska written to a pipe, as live recorders do: "Duration: N/A"
    with open(live, 'wb') as f:
        subprocess.run([material_ffmpeg(), '-v', 'error', '-i', str(ramp), '-c', 'copy', '-f', 'matroska', '-'], stdout=f, check=True)
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy='count', count=4), live)
    assert video.duration == pytest.approx(2.0)
    assert timestamps(video) == [0.25, 0.75, 1.25, 1.75]


def test_skipping_unreferenced_frames_keeps_timestamps_exact(tmp_path, workspace, ffmpeg):
    video_path = ramp_video(tmp_path / 'b-frames.mp4', codec_args=WITH_B_FRAMES)
    for skip in (True, False):
        video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, fps=3, skip_nonref=skip), video_path)
        assert len(video.frames) == 6
        for k, frame in enumerate(video.frames):
            assert k / 3 <= frame.timestamp < k / 3 + 4 / RATE  # at most the B-frames of one group later
            assert frame_number(frame.tensor) == round(frame.timestamp * RATE)


def test_iframe_takes_the_codec_keyframes(tmp_path, workspace, ffmpeg):
    video_path = ramp_video(tmp_path / 'gop8.mp4', codec_args=(*LOSSLESS, '-g', '8', '-sc_threshold', '0'))
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy='iframe'), video_path)
    assert timestamps(video) == [0.0, 0.4, 0.8, 1.2, 1.6]
    assert [frame_number(f.tensor) for f in video.frames] == [0, 8, 16, 24, 32]


# ----------------------------------------------------------------------------- shots


def test_scene_finds_the_cuts_and_a_keyframe_at_each(cuts, workspace, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy='scene', max_gap=10), cuts)
    assert len(video.shots) == 2
    assert video.shots == pytest.approx([1.0, 2.2], abs=1 / 25 + 1e-6)
    assert timestamps(video) == pytest.approx([0.0, *video.shots])


def test_scene_max_gap_gives_long_shots_more_keyframes(cuts, workspace, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy='scene', max_gap=0.5), cuts)
    gaps = np.diff([0.0, *timestamps(video), video.duration])
    assert gaps.max() <= 0.5 + 1 / 25
    assert set(np.round(video.shots, 2)) <= set(np.round(timestamps(video), 2))


@pytest.mark.parametrize('strategy', ['uniform', 'count'])
def test_every_strategy_records_the_shot_cuts_from_the_same_decode(cuts, workspace, strategy, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy=strategy), cuts)
    assert video.shots == pytest.approx([1.0, 2.2], abs=1 / 25 + 1e-6)


# ----------------------------------------------------------------------------- pictures


def test_keyframes_have_the_short_side_at_size_and_a_thumbnail_each(ramp, workspace, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, size=96), ramp)
    assert video.video_id == file_sha256(ramp)
    assert sorted(staged_files(workspace)) == sorted(Path(f.thumbnail) for f in video.frames)  # one each, staged
    for frame in video.frames:
        assert frame.tensor.shape == (96, 128, 3) and frame.tensor.dtype == np.uint8
        assert frame.video_id == video.video_id
        with Image.open(frame.thumbnail) as thumbnail:
            assert thumbnail.size == (128, 96)


def test_encode_gives_keyframes_without_writing_thumbnails(ramp, workspace):
    docs = DocList[VideoDoc]([VideoDoc(uri=str(ramp))])
    video, = VideoLoader(workspace=str(workspace)).handle('/encode', docs, {})
    assert len(video.frames) >= 2 and all(f.tensor is not None and f.thumbnail == '' for f in video.frames)
    assert not (workspace / 'thumbnails').exists()


def test_rotation_metadata_is_applied(tmp_path, workspace, ffmpeg):
    # white top half as stored; the player turns it 90 degrees, so the white half is then on a side
    stored = make_video(tmp_path / 'stored.mp4', duration=1, size='64x48', source='color=c=black',
                        extra_args=('-vf', 'drawbox=x=0:y=0:w=64:h=24:color=white:t=fill'))
    rotated = tmp_path / 'rotated.mp4'
    subprocess.run([material_ffmpeg(), '-y', '-v', 'error', '-display_rotation', '90', '-i', str(stored), '-c', 'copy',
                    str(rotated)], check=True)
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg), rotated)
    assert (video.width, video.height) == (48, 64)
    tensor = video.frames[0].tensor.astype(float)
    assert tensor.shape == (299, 224, 3)
    height, width = tensor.shape[:2]
    assert abs(tensor[:, :width // 2].mean() - tensor[:, width // 2:].mean()) > 200
    assert abs(tensor[:height // 2].mean() - tensor[height // 2:].mean()) < 10


def test_half_a_second_video_gives_keyframes_with_every_strategy(tmp_path, workspace, ffmpeg):
    short = ramp_video(tmp_path / 'short.mp4', duration=0.5)
    for strategy in ('uniform', 'count', 'scene', 'iframe'):
        video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, strategy=strategy), short)
        assert video.status == '' and video.frames, strategy
        assert all(0 <= t < 0.5 for t in timestamps(video))
        for frame in video.frames:
            assert frame_number(frame.tensor) == round(frame.timestamp * RATE)


# ----------------------------------------------------------------------------- bad files


def _corrupt(source, path, start, length):
    data = bytearray(source.read_bytes())
    rng = random.Random(0)
    data[start:start + length] = bytes(rng.randrange(256) for _ in range(length))
    path.write_bytes(data)
    return path


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory, ramp):
    folder = tmp_path_factory.mktemp('bad')
    (folder / 'notes.mp4').write_text('not a video, just text\n')
    (folder / 'empty.mp4').write_bytes(b'')
    (folder / 'folder.mp4').mkdir()
    subprocess.run([material_ffmpeg(), '-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'aac',
                    str(folder / 'sound.mp4')], check=True)
    whole = make_video(folder / 'whole.mp4', duration=2, size='64x48')  # its index (moov) is at the end
    (folder / 'half.mp4').write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    streamable = make_video(folder / 'streamable.mp4', duration=2, size='64x48', extra_args=('-movflags', '+faststart'))
    (folder / 'cut short.mp4').write_bytes(streamable.read_bytes()[:streamable.stat().st_size * 2 // 3])
    _corrupt(whole, folder / 'garbled header.mp4', 0, 2048)
    (folder / 'huge picture.mp4').write_bytes(truncated_png(12000, 12000))  # 2 GB of pixels, were it decoded
    return folder


def truncated_png(width: int, height: int) -> bytes:
    """A PNG header declaring width x height, then a cut-off first data chunk (62 bytes in all)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(bytes(1000))[:60])


@pytest.mark.parametrize('name, reason', [
    ('notes.mp4', 'not a video file'),
    ('empty.mp4', 'empty'),
    ('folder.mp4', 'is a folder'),
    ('missing.mp4', 'no such file'),
    ('notes.mp4/inside a file.mp4', 'cannot read it (Not a directory)'),
    ('sound.mp4', 'no video stream (audio only)'),
    ('half.mp4', 'truncated'),
    ('cut short.mp4', 'truncated'),
    ('garbled header.mp4', 'corrupt'),
    ('huge picture.mp4', 'a still image, not a video'),
])
def test_a_bad_file_fails_with_its_name_and_reason_and_leaves_nothing(bad_files, workspace, name, reason, ffmpeg):
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg), bad_files / name)
    assert video.status == 'failed'
    assert video.error.startswith(f'{os.path.basename(name)}: ') and reason in video.error
    assert len(video.frames) == 0 and video.shots == []
    assert staged_files(workspace) == []


def test_damage_inside_the_stream_is_concealed_not_fatal(tmp_path, workspace, ffmpeg):
    whole = make_video(tmp_path / 'whole.mp4', duration=3, size='64x48')
    damaged = _corrupt(whole, tmp_path / 'damaged.mp4', whole.stat().st_size // 2, 300)
    video, = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg), damaged)
    assert video.status == '' and len(video.frames) == 3


def test_a_batch_goes_on_after_a_bad_file(tmp_path, ramp, bad_files, workspace, monkeypatch):
    named = ramp_video(tmp_path / 'café vidéo 北京 2.mp4', duration=1.0)
    monkeypatch.chdir(tmp_path)
    good, bad, unicode = index(VideoLoader(workspace=str(workspace)), ramp, bad_files / 'notes.mp4', named.name)
    assert [good.status, bad.status, unicode.status] == ['', 'failed', '']
    assert unicode.uri == str(named) and os.path.isabs(unicode.uri)
    assert (len(good.frames), len(unicode.frames)) == (2, 1)
    assert sorted(staged_files(workspace)) == sorted(Path(f.thumbnail) for f in [*good.frames, *unicode.frames])


def test_a_file_name_that_is_not_utf8_is_indexed_and_its_errors_print(tmp_path, ramp, workspace, ffmpeg):
    folder = os.fsdecode(tmp_path) + os.sep
    good, broken = folder + os.fsdecode(b'caf\xe9.mp4'), folder + os.fsdecode(b'\xff\xfe notes.mp4')
    try:
        Path(good).write_bytes(ramp.read_bytes())
        Path(broken).write_text('not a video')
    except (OSError, UnicodeError):
        pytest.skip('this file system takes UTF-8 names only')
    video, failed = index(VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg), good, broken)
    assert video.status == '' and len(video.frames) == 2 and video.uri == good  # the str that opens the file
    assert os.fsencode(video.uri) == os.fsencode(tmp_path) + b'/caf\xe9.mp4'
    assert failed.status == 'failed' and failed.error.startswith('\\xff\\xfe notes.mp4: not a video file')
    failed.error.encode('utf-8')  # prints and stores as it is


# ----------------------------------------------------------------------------- a long video in pieces


def test_chunk_frames_gives_a_video_in_pieces_with_the_shots_on_the_last(cuts, workspace, ffmpeg):
    whole, = index(VideoLoader(workspace=str(workspace / 'whole'), ffmpeg=ffmpeg, fps=4), cuts)
    loader = VideoLoader(workspace=str(workspace), ffmpeg=ffmpeg, fps=4, chunk_frames=5)
    pieces = [piece for docs in loader.index(DocList[VideoDoc]([VideoDoc(uri=str(cuts))]), {}) for piece in docs]
    assert [len(p.frames) for p in pieces] == [5, 5, 2] and len(whole.frames) == 12
    assert [p.last_chunk for p in pieces] == [False, False, True]
    assert {(p.id, p.uri, p.video_id, p.duration, p.width, p.status) for p in pieces} == {
        (pieces[-1].id, whole.uri, whole.video_id, whole.duration, whole.width, '')}
    assert [p.shots for p in pieces] == [[], [], whole.shots] and len(whole.shots) == 2
    assert [f.timestamp for p in pieces for f in p.frames] == timestamps(whole)
    assert sorted(staged_files(workspace)) == sorted(Path(f.thumbnail) for p in pieces for f in p.frames)


def test_a_video_that_fails_after_some_pieces_ends_with_a_failed_last_piece(bad_files, workspace):
    loader = VideoLoader(workspace=str(workspace), fps=10, chunk_frames=4)
    docs = DocList[VideoDoc]([VideoDoc(uri=str(bad_files / 'cut short.mp4')), VideoDoc(uri=str(bad_files / 'whole.mp4'))])
    pieces = [piece for chunk in loader.index(docs, {}) for piece in chunk]
    failed = pieces.index(next(p for p in pieces if p.status == 'failed'))
    assert failed > 0 and all(p.status == '' and not p.last_chunk for p in pieces[:failed])
    assert pieces[failed].last_chunk and 'truncated' in pieces[failed].error and len(pieces[failed].frames) == 0
    assert [p.last_chunk for p in pieces[failed + 1:]][-1] and pieces[-1].status == ''
    assert sorted(staged_files(workspace)) == sorted(Path(f.thumbnail) for p in pieces[failed + 1:] for f in p.frames)


def test_stopping_a_chunked_video_early_removes_its_thumbnails(ramp, workspace):
    pieces = VideoLoader(workspace=str(workspace), fps=10, chunk_frames=3).index(
        DocList[VideoDoc]([VideoDoc(uri=str(ramp))]), {})
    first, = next(pieces)
    assert len(first.frames) == 3 and len(staged_files(workspace)) == 3
    pieces.close()
    assert staged_files(workspace) == []


def test_videos_decided_before_decoding_travel_together_in_order(ramp, workspace):
    """A re-run over a library of known files hands them on in a few requests, not one per file."""
    known = [VideoDoc(uri=f'/videos/{i}.mp4', video_id=f'{i:064x}', status='already indexed') for i in range(3)]
    docs = DocList[VideoDoc]([*known[:2], VideoDoc(uri=str(ramp)), known[2]])
    chunks = list(VideoLoader(workspace=str(workspace), fps=10, chunk_frames=4).index(docs, {}))
    assert [d.uri for d in chunks[0]] == ['/videos/0.mp4', '/videos/1.mp4']
    assert all(len(c) == 1 and c[0].uri == str(ramp) for c in chunks[1:-1]) and chunks[-2][0].last_chunk
    assert [d.uri for d in chunks[-1]] == ['/videos/2.mp4']


def test_an_indexed_video_is_not_decoded_again(ramp, workspace):
    calls = []
    video, = index(VideoLoader(workspace=str(workspace)), ramp, indexed_ids={file_sha256(ramp)},
                   progress=lambda *args: calls.append(args))
    assert video.status == 'already indexed' and video.video_id == file_sha256(ramp)
    assert len(video.frames) == 0 and calls == [] and not (workspace / 'thumbnails').exists()


def test_progress_counts_decoded_frames(ramp, workspace):
    calls = []
    video, = index(VideoLoader(workspace=str(workspace), fps=4), ramp,
                   progress=lambda doc, stage, done, total: calls.append((doc.uri, stage, done, total)))
    assert {(uri, stage) for uri, stage, _, _ in calls} == {(video.uri, 'decode')}
    assert [done for _, _, done, _ in calls[:-1]] == list(range(1, 9))
    assert calls[-1][2:] == (8, 8) and all(total >= done for _, _, done, total in calls)


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize('kwargs, message', [
    ({'strategy': 'random'}, "unknown strategy 'random' (valid: uniform, count, scene, iframe)"),
    ({'fps': 0}, 'fps must be above 0'),
    ({'count': 0}, 'count must be at least 1'),
    ({'scene_threshold': 1.5}, 'scene_threshold must be in (0, 1]'),
    ({'max_gap': -1}, 'max_gap must be above 0'),
    ({'size': 8}, 'size must be between 16 and 4096'),
    ({'threads': -2}, 'threads must be 0'),
    ({'chunk_frames': -1}, 'chunk_frames must be 0'),
])
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')):
        VideoLoader(**kwargs)


def test_flow_yml_settings_reach_the_loader(tmp_path, ramp, workspace):
    flow_file = tmp_path / 'flow.yml'
    flow_file.write_text('with:\n  workspace: unused\nexecutors:\n'
                         '  - uses: VideoLoader\n    with:\n      strategy: count\n      count: 3\n      size: 32\n')
    with Flow(flow_file, workspace=str(workspace)) as flow:
        video, = flow.post('/index', DocList[VideoDoc]([VideoDoc(uri=str(ramp))]))
    assert len(video.frames) == 3 and video.frames[0].tensor.shape == (32, 43, 3)
    assert all(os.path.isfile(f.thumbnail) for f in video.frames)


# ----------------------------------------------------------------------------- metadata parsing (older ffmpeg)

FFMPEG4_PHONE = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mov':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 17000 kb/s
    Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709), 1920x1080, 16000 kb/s, 29.97 fps, 29.97 tbr, 600 tbn, 1200 tbc (default)
    Metadata:
      rotate          : 90
    Side data:
      displaymatrix: rotation of -90.00 degrees
    Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 96 kb/s (default)
At least one output file must be specified
"""

ANAMORPHIC_WITH_COVER = """Input #0, matroska,webm, from 'dvd.mkv':
  Duration: N/A, start: 0.000000, bitrate: N/A
  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc), 600x600 [SAR 1:1 DAR 1:1], 90k tbr, 90k tbn (attached pic)
  Stream #0:1: Video: mpeg2video (Main), yuv420p(tv, top first), 720x480 [SAR 8:9 DAR 4:3], 25 fps, 25 tbr, 1k tbn
"""


def test_metadata_is_read_from_ffmpeg_4_output_too():
    info = parse_probe(FFMPEG4_PHONE, 'phone.mov')
    assert (info.duration, info.fps, info.width, info.height, info.rotation) == (62.5, 29.97, 1080, 1920, 270)
    assert info.scaled(224) == (224, 398)


def test_frames_pass_through_unduplicated_on_old_and_new_ffmpeg():
    assert passthrough_option('ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021') == {'vsync': 'passthrough'}
    assert passthrough_option('ffmpeg version 5.1.6-0+deb12u1 Copyright') == {'fps_mode': 'passthrough'}
    assert passthrough_option('ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright') == {'fps_mode': 'passthrough'}
    assert passthrough_option('ffmpeg version N-118000-g1234abcd Copyright') == {'fps_mode': 'passthrough'}  # git build


def test_metadata_skips_cover_art_and_applies_the_pixel_aspect_ratio():
    info = parse_probe(ANAMORPHIC_WITH_COVER, 'dvd.mkv')
    assert (info.duration, info.fps, info.width, info.height) == (0.0, 25.0, 640, 480)

