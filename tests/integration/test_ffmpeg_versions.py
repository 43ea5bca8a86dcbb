"""Which ffmpeg the loader runs, and that it reads the keyframe times and shot cuts of every ffmpeg from 4.4 on.

Debian 12's ffmpeg 5.1 logs its cuts as `[scdet @ 0x..]` where 9.0 writes `[Parsed_scdet_0 @ 0x..]`;
a parser that knew only one lost every cut without a word. These tests hold the general rule: a log
the loader cannot read is an error that names the ffmpeg, never a video without its shots.
"""
import logging
import math
import os
import stat
from pathlib import Path

import pytest

from executors.documents import DocList, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import find_ffmpeg, read_binary
from executors.media.ffmpeg_log import FfmpegLog
from executors.media.frame_reader import FrameReader, check_log_format
from executors.media.sampling import Sampling
from executors.video_loader import VideoLoader
from executors.media.probe import packets_end, probe
from tests.factories import concat_videos, make_video
from tests.ffmpegs import DEBIAN, FFMPEGS, ffmpeg_choice

# Lines as each release writes them (ffmpeg -loglevel level+info; 4.4's scdet logs as 5.1's does)
DEBIAN_5_1 = """\
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info] config in time_base: 1/12800, frame_rate: 25/1
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info] config out time_base: 0/0, frame_rate: 0/0
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info] n:   0 pts:      0 pts_time:0       pos:       48 fmt:rgb24 sar:1/1 s:32x24 i:P iskey:1 type:I checksum:04504508 plane_checksum:[04504508] mean:[65] stdev:[78.9]
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info]   side data - User Data Unregistered:
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info] color_range:pc color_space:gbr color_primaries:unknown color_trc:unknown
[info]       encoder         : Lavc59.37.100 rawvideo
[scdet @ 0x55e62cccd180] [info] lavfi.scd.score: 27.475, lavfi.scd.time: 1
[Parsed_showinfo_3 @ 0x55e62cccfec0] [info] n:   1 pts:  12800 pts_time:1       pos:     2331 fmt:rgb24 sar:1/1 s:32x24 i:P iskey:1 type:I checksum:1FF675E3 plane_checksum:[1FF675E3] mean:[98] stdev:[91.0]
[info] frame=    2 fps=0.0 q=-0.0 Lsize=       4kB time=00:00:01.04 bitrate=  35.4kbits/s speed=77.6x
"""
BUNDLED_9_0 = """\
[Parsed_showinfo_3 @ 0x7f948800ffc0] [info] config in time_base: 1/12800, frame_rate: 25/1
[Parsed_showinfo_3 @ 0x7f948800ffc0] [info] n:   0 pts:      0 pts_time:0       duration:    512 duration_time:0.04    fmt:rgb24 cl:unspecified sar:1/1 s:32x24 i:P iskey:1 type:I checksum:04504508 plane_checksum:[04504508] mean:[65] stdev:[78.9]
[Parsed_scdet_0 @ 0x7f9488002000] [info] lavfi.scd.score: 27.475, lavfi.scd.time: 1
[Parsed_showinfo_3 @ 0x7f948800ffc0] [info] n:   1 pts:  12800 pts_time:1       duration:    512 duration_time:0.04    fmt:rgb24 cl:unspecified sar:1/1 s:32x24 i:P iskey:1 type:I checksum:1FF675E3 plane_checksum:[1FF675E3] mean:[98] stdev:[91.0]
[out#0/rawvideo @ 0x55b05f59de00] [info] video:4KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: 0.000000%
"""


def read_log(text: str) -> tuple[list[float], FfmpegLog]:
    log = FfmpegLog()
    times = [t for line in text.splitlines() if (t := log.read(line)) is not None]
    return times, log


@pytest.mark.parametrize('text', [DEBIAN_5_1, BUNDLED_9_0], ids=['5.1', '9.0'])
def test_times_and_cuts_are_read_from_every_releases_log(text):
    times, log = read_log(text)
    assert times == [0.0, 1.0] and log.shots == [1.0] and log.unreadable == ''


@pytest.mark.parametrize('line', [
    '[Parsed_scdet_0 @ 0x7f94] [info] lavfi.scd.score: 27.475, lavfi.scd.time=1',  # the message reworded
    '[scene_detect @ 0x7f94] [info] lavfi.scd.score: 27.475, lavfi.scd.time: 1',  # the filter renamed
    '[scdet @ 0x7f94] [info] lavfi.scd.score: 27.475, lavfi.scd.time: NOPTS',
    '[Parsed_showinfo_3 @ 0x7f94] [info] n:   1 pts_time:1',
])
def test_a_line_about_a_time_or_a_cut_that_cannot_be_read_is_kept_not_dropped(line):
    times, log = read_log(line)
    assert log.unreadable == line and log.shots == []
    assert all(math.isnan(t) for t in times)


# ----------------------------------------------------------------------------- real binaries


@pytest.fixture(params=FFMPEGS)
def ffmpeg(request):
    return find_ffmpeg(ffmpeg_choice(request.param))


@pytest.fixture(scope='module')
def cut_at_one_second(tmp_path_factory):
    folder = tmp_path_factory.mktemp('cut')
    parts = [make_video(folder / f'{i}.mp4', duration=1, size='64x48', rate=25, source=s)
             for i, s in enumerate(['smptebars', 'color=c=darkgreen'])]
    return concat_videos(folder / 'cut.mp4', parts)


def test_each_ffmpeg_passes_the_log_check_and_gives_the_cut(ffmpeg, cut_at_one_second):
    check_log_format(ffmpeg)
    with FrameReader(cut_at_one_second, probe(cut_at_one_second, ffmpeg), Sampling(), 32, ffmpeg=ffmpeg) as reader:
        times = [t for t, _ in reader]
    assert times == [0.0, 1.0] and reader.shots == [1.0]


def wrapper(folder: Path, real: str, stderr_filter: str) -> str:
    """An ffmpeg that runs `real` with its log passed through `stderr_filter` (a shell pipeline)."""
    script = folder / 'ffmpeg'
    script.write_text(f'#!/bin/bash\n"{real}" "$@" 2> >({stderr_filter} >&2)\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize('stderr_filter', [
    "grep --line-buffered -v 'lavfi.scd'",  # the cuts' lines never match: what Debian's 5.1 did to the old parser
    "sed -u 's/lavfi.scd.time: /lavfi.scd.time=/'",  # the cut message reworded
    "grep --line-buffered -v 'pts_time'",  # no keyframe times
])
def test_an_ffmpeg_whose_log_the_loader_cannot_read_is_refused_before_any_video(tmp_path, ffmpeg, stderr_filter,
                                                                               cut_at_one_second):
    changed = read_binary(wrapper(tmp_path, ffmpeg.path, stderr_filter))
    assert changed.version == ffmpeg.version
    loader = VideoLoader(workspace=str(tmp_path / 'workspace'), ffmpeg=changed.path, chunk_frames=0)
    with pytest.raises(ConfigError) as error:
        loader.index(DocList[VideoDoc]([VideoDoc(uri=str(cut_at_one_second))]), {})
    assert str(error.value).startswith(f'{changed.name} ({changed.path}): ')
    assert not (tmp_path / 'workspace').exists()


@pytest.mark.parametrize('stderr_filter, reason', [
    ("sed -u 's/lavfi.scd.time: /lavfi.scd.time=/'", 'a keyframe time or a shot cut could not be read'),
    ("grep --line-buffered -v 'pts_time'", 'keyframe 1 came without a readable time'),
])
def test_a_log_line_the_reader_cannot_read_fails_the_video_naming_the_ffmpeg(tmp_path, ffmpeg, cut_at_one_second,
                                                                             stderr_filter, reason):
    changed = read_binary(wrapper(tmp_path, ffmpeg.path, stderr_filter))
    with pytest.raises(VideoError) as error:
        with FrameReader(cut_at_one_second, probe(cut_at_one_second, changed), Sampling(), 32, ffmpeg=changed) as reader:
            list(reader)
    assert str(error.value).startswith(f'cut.mp4: {reason} from the log of {changed.name} ({changed.path})')


# ----------------------------------------------------------------------------- choosing the binary


def fake_ffmpeg(folder: Path, version: str) -> str:
    """A program that says it is ffmpeg `version` (and does nothing else)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / 'ffmpeg'
    script.write_text(f'#!/bin/sh\necho "ffmpeg version {version} Copyright (c) 2000-2020 the FFmpeg developers"\n')
    script.chmod(0o755)
    return str(script)


def test_an_ffmpeg_older_than_4_4_is_refused_with_its_version(tmp_path):
    old = fake_ffmpeg(tmp_path, '4.3.1-0+deb11u1')
    with pytest.raises(ConfigError, match=r'ffmpeg 4\.3\.1-0\+deb11u1 \(.*\): too old; VCED needs ffmpeg 4\.4 or later'):
        VideoLoader(workspace=str(tmp_path / 'workspace'), ffmpeg=old)


def test_auto_takes_the_system_ffmpeg_from_4_4_on_else_the_bundled_one(tmp_path, monkeypatch):
    bundled = find_ffmpeg('bundled')
    monkeypatch.setenv('PATH', str(tmp_path / 'old'))
    fake_ffmpeg(tmp_path / 'old', '4.3.1')
    assert find_ffmpeg('auto') == bundled
    monkeypatch.setenv('PATH', str(tmp_path / 'none'))
    assert find_ffmpeg('auto') == bundled
    if Path(DEBIAN).exists():
        monkeypatch.setenv('PATH', os.path.dirname(DEBIAN))
        assert find_ffmpeg('auto').path == DEBIAN and find_ffmpeg('auto').release >= (4, 4)


def test_a_replaced_binary_is_read_again(tmp_path):
    path = fake_ffmpeg(tmp_path, '6.1')
    assert read_binary(path).release == (6, 1)
    os.utime(path, ns=(1, 1))  # a package upgrade: same path, another file
    Path(path).write_text('#!/bin/sh\necho "ffmpeg version 7.0.2 Copyright"\n')
    assert read_binary(path).release == (7, 0)


@pytest.mark.parametrize('choice, message', [
    ('/no/such/ffmpeg', 'ffmpeg: /no/such/ffmpeg: no such program (valid: auto, bundled, system or the path of an ffmpeg)'),
    ('/bin/true', "ffmpeg: /bin/true: not an ffmpeg (`-version` says 'nothing')"),
])
def test_a_wrong_ffmpeg_setting_is_a_one_line_error(choice, message):
    with pytest.raises(ConfigError) as error:
        VideoLoader(ffmpeg=choice)
    assert str(error.value) == message


def test_the_loader_logs_its_ffmpeg_and_uses_it_everywhere(tmp_path, caplog, cut_at_one_second, ffmpeg):
    with caplog.at_level(logging.INFO, logger='executors.video_loader'):
        loader = VideoLoader(workspace=str(tmp_path / 'workspace'), ffmpeg=ffmpeg.path, chunk_frames=0)
    assert loader.ffmpeg == ffmpeg
    assert [r.getMessage() for r in caplog.records] == [f'VideoLoader decodes with {ffmpeg}']
    video, = loader.index(DocList[VideoDoc]([VideoDoc(uri=str(cut_at_one_second))]), {})
    assert video.shots == [1.0]


def test_the_end_of_the_last_packet_is_the_duration():
    framecrc = ['#tb 0: 1/1000', '#media_type 0: video', '0,          0,          0,       50,      123, 0x1',
                '0,         50,       1950,       50,      123, 0x2', '0,        100,        100,       50,      12, 0x3']
    assert packets_end(framecrc) == 2.0 and packets_end([]) == 0.0
