"""Subtitles: sidecar .srt/.vtt files and text streams muxed into videos become timed cues."""
import logging
from pathlib import Path

import pytest

from executors.documents import DocList, VideoDoc
from executors.speech_reader import SpeechReader, read_cues
from library import format_srt
from executors.media import subtitles
from executors.media.subtitles import (MAX_CUE_CHARS, SubtitleError, SubtitleStream, find_sidecars, language_code, list_subtitle_streams, parse_ass, parse_srt,
                                 parse_vtt, read_sidecar, subtitle_cues)
from executors.video_loader import VideoLoader
from tests.factories import make_video
from tests.speech_fixtures import video_with_streams, whole_videos

ENGLISH_SRT = ('1\n00:00:01,000 --> 00:00:02,500\nA man rides a <i>bike</i>\nalong the beach\n\n'
               '2\n00:00:03,000 --> 00:00:04,200\n<font color="#ff0000">Sunset</font> &amp; waves\n')
CHINESE_SRT = '1\n00:00:01,000 --> 00:00:02,500\n我们去海边吧\n\n2\n00:00:03,000 --> 00:00:04,200\n海边的日落\n'
ENGLISH_VTT = ('WEBVTT - a title\n\nNOTE written by hand\n\nSTYLE\n::cue { color: yellow }\n\n'
               'intro\n00:01.000 --> 00:02.500 align:start position:10%\n<v Ann>Hello <c.loud>there</c></v>\n\n'
               '00:00:03.000 --> 00:00:04.000\nKaraoke <00:00:03.500>words\n')


@pytest.fixture(scope='module')
def plain_video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp('plain') / 'plain.mp4', duration=2, size='160x120')


def test_srt_cues_have_times_and_clean_text():
    cues = parse_srt(ENGLISH_SRT)
    assert cues == [(1.0, 2.5, 'A man rides a bike along the beach'), (3.0, 4.2, 'Sunset & waves')]


def test_srt_with_bom_crlf_missing_numbers_and_dots_reads_the_same():
    messy = '\ufeff' + ENGLISH_SRT.replace('1\n00', '00', 1).replace(',', '.', 2).replace('\n', '\r\n') + '\r\n\r\n'
    assert parse_srt(messy) == parse_srt(ENGLISH_SRT)


def test_srt_skips_a_broken_block_and_keeps_the_rest():
    broken = '1\n00:00:01,000 --> soon\nlost\n\n' + CHINESE_SRT.replace('1\n', '2\n', 1)
    assert [text for _, _, text in parse_srt(broken)] == ['我们去海边吧', '海边的日落']


def test_ass_override_tags_are_stripped():
    assert parse_srt('1\n00:00:01,000 --> 00:00:02,000\n{\\an8}{\\i1}Top{\\i0} line\\Nnext\n') == \
        [(1.0, 2.0, 'Top line next')]


def test_vtt_drops_header_notes_styles_settings_voices_and_inline_times():
    assert parse_vtt(ENGLISH_VTT) == [(1.0, 2.5, 'Hello there'), (3.0, 4.0, 'Karaoke words')]


@pytest.mark.parametrize('text, message', [
    ('this is not a subtitle file\nat all\n', 'no SubRip cue'),
    ('1\n00:00:01,000 --> 00:00:00,500\nends before it starts\n', 'no SubRip cue'),
    ('1\n99:99:99 --> 00:00:02,000\nbad time\n', 'no SubRip cue'),
])
def test_malformed_srt_raises_naming_the_file(text, message):
    with pytest.raises(SubtitleError, match=f'clip.srt: {message}'):
        parse_srt(text, 'clip.srt')


def test_vtt_without_header_is_malformed():
    with pytest.raises(SubtitleError, match='clip.vtt: not a WebVTT file'):
        parse_vtt('00:01.000 --> 00:02.000\nhi\n', 'clip.vtt')


def test_legacy_encodings_are_decoded(tmp_path):
    (tmp_path / 'gbk.srt').write_bytes(CHINESE_SRT.encode('gbk'))
    (tmp_path / 'utf16.srt').write_bytes(CHINESE_SRT.encode('utf-16'))
    assert [c.text for c in read_sidecar(tmp_path / 'gbk.srt', 'v', 'zh')] == ['我们去海边吧', '海边的日落']
    assert [c.text for c in read_sidecar(tmp_path / 'utf16.srt', 'v', 'zh')] == ['我们去海边吧', '海边的日落']


def test_language_codes():
    assert [language_code(t) for t in ('en', 'eng', 'zh-Hans', 'pt_BR', 'chi', 'und', 'forced', '')] == \
        ['en', 'en', 'zh', 'pt', 'zh', '', '', '']


def test_sidecars_are_found_one_per_language(tmp_path):
    video = tmp_path / 'talk.mp4'
    for name in ('talk.srt', 'talk.vtt', 'talk.en.srt', 'talk.en.forced.srt', 'talk.zh.vtt', 'talk2.srt',
                 'other.en.srt', 'talk.txt'):
        (tmp_path / name).write_text('x')
    found = {path.name: language for path, language in find_sidecars(video)}
    assert found == {'talk.srt': '', 'talk.en.srt': 'en', 'talk.zh.vtt': 'zh'}


def test_sidecar_cues_carry_source_language_and_video(tmp_path, plain_video):
    folder = tmp_path / 'v'
    folder.mkdir()
    video = folder / 'talk.mp4'
    video.write_bytes(plain_video.read_bytes())
    (folder / 'talk.en.srt').write_text(ENGLISH_SRT, encoding='utf-8')
    (folder / 'talk.zh.vtt').write_text('WEBVTT\n\n' + CHINESE_SRT.replace(',', '.'), encoding='utf-8')
    cues = subtitle_cues(video, 'vid')
    assert [(c.start, c.source, c.language) for c in cues] == \
        [(1.0, 'srt', 'en'), (1.0, 'vtt', 'zh'), (3.0, 'srt', 'en'), (3.0, 'vtt', 'zh')]
    assert {c.video_id for c in cues} == {'vid'}


def test_muxed_text_streams_english_and_chinese(tmp_path):
    (tmp_path / 'en.srt').write_text(ENGLISH_SRT, encoding='utf-8')
    (tmp_path / 'zh.srt').write_text(CHINESE_SRT, encoding='utf-8')
    video = video_with_streams(tmp_path / 'muxed.mp4', [(tmp_path / 'en.srt', 'eng'), (tmp_path / 'zh.srt', 'chi')])
    assert [(s.codec, s.language, s.is_text) for s in list_subtitle_streams(video)] == \
        [('mov_text', 'en', True), ('mov_text', 'zh', True)]
    cues = subtitle_cues(video, 'vid')
    assert {(c.start, c.end, c.text, c.source, c.language) for c in cues} == {
        (1.0, 2.5, 'A man rides a bike along the beach', 'stream', 'en'), (3.0, 4.2, 'Sunset & waves', 'stream', 'en'),
        (1.0, 2.5, '我们去海边吧', 'stream', 'zh'), (3.0, 4.2, '海边的日落', 'stream', 'zh')}


@pytest.mark.parametrize('codec, decoder', [('ass', 'ssa'), ('subrip', 'srt'), ('webvtt', 'webvtt')])
def test_other_text_stream_codecs(tmp_path, codec, decoder):
    (tmp_path / 'zh.srt').write_text(CHINESE_SRT, encoding='utf-8')
    video = video_with_streams(tmp_path / 'muxed.mkv', [(tmp_path / 'zh.srt', 'zho')], codec=codec)
    assert [(s.codec, s.language, s.is_text) for s in list_subtitle_streams(video)] == [(decoder, 'zh', True)]
    assert [(c.start, c.text) for c in subtitle_cues(video, 'v')] == [(1.0, '我们去海边吧'), (3.0, '海边的日落')]


def test_bitmap_stream_is_skipped_with_a_note(plain_video, monkeypatch, caplog):
    # ffmpeg cannot make bitmap subtitles from text, so the stream list is given (the file has none)
    streams = [SubtitleStream(0, 'dvd_subtitle', 'en'), SubtitleStream(1, 'hdmv_pgs_subtitle', 'zh')]
    monkeypatch.setattr(subtitles, 'list_subtitle_streams', lambda video: streams)
    with caplog.at_level(logging.INFO, logger='executors.media.subtitles'):
        assert subtitle_cues(plain_video, 'v') == []
    assert 'subtitle stream 0 (dvd_subtitle) skipped: bitmap subtitles need OCR' in caplog.text
    assert 'subtitle stream 1 (hdmv_pgs_subtitle) skipped' in caplog.text


def test_sidecar_wins_over_stream_and_speech(tmp_path):
    (tmp_path / 'zh.srt').write_text(CHINESE_SRT, encoding='utf-8')
    video = video_with_streams(tmp_path / 'both.mp4', [(tmp_path / 'zh.srt', 'chi')])
    (tmp_path / 'both.en.srt').write_text(ENGLISH_SRT, encoding='utf-8')
    cues = read_cues(VideoDoc(uri=str(video), video_id='v'), recognizer=pytest.fail)
    assert {(c.source, c.language) for c in cues} == {('srt', 'en')}


def test_malformed_sidecar_warns_and_falls_through_to_the_stream(tmp_path, caplog):
    (tmp_path / 'zh.srt').write_text(CHINESE_SRT, encoding='utf-8')
    video = video_with_streams(tmp_path / 'bad.mp4', [(tmp_path / 'zh.srt', 'chi')])
    (tmp_path / 'bad.srt').write_bytes(b'\x00\x01 garbage --> nothing\n\x00')
    with caplog.at_level(logging.WARNING):
        cues = read_cues(VideoDoc(uri=str(video), video_id='v'), recognizer=pytest.fail)
    assert [(c.source, c.text) for c in cues] == [('stream', '我们去海边吧'), ('stream', '海边的日落')]
    assert 'bad.srt: no SubRip cue could be read' in caplog.text


def test_video_with_a_malformed_sidecar_is_still_indexed(tmp_path, plain_video, caplog):
    video = tmp_path / 'clip.mp4'
    video.write_bytes(plain_video.read_bytes())
    (tmp_path / 'clip.vtt').write_text('not vtt at all', encoding='utf-8')
    docs = DocList[VideoDoc]([VideoDoc(uri=str(video))])
    docs = VideoLoader(workspace=str(tmp_path / 'ws'), chunk_frames=0).index(docs, {})
    with caplog.at_level(logging.WARNING):
        docs = whole_videos(SpeechReader(asr='off').index(docs, {}))
    assert docs[0].status == '' and len(docs[0].frames) == 2 and len(docs[0].cues) == 0
    assert 'clip.vtt: not a WebVTT file' in caplog.text


def test_reader_fills_cues_of_loaded_videos_only(tmp_path, plain_video):
    video = tmp_path / 'talk.mp4'
    video.write_bytes(plain_video.read_bytes())
    (tmp_path / 'talk.srt').write_text(ENGLISH_SRT, encoding='utf-8')
    docs = DocList[VideoDoc]([VideoDoc(uri=str(video), video_id='a'),
                              VideoDoc(uri=str(video), video_id='b', status='already indexed'),
                              VideoDoc(uri=str(video), video_id='c', status='failed')])
    docs = SpeechReader(asr='off').index(docs, {})
    assert [len(d.cues) for d in docs] == [2, 0, 0]
    assert docs[0].cues[0].video_id == 'a'


def test_format_srt_round_trips():
    cues = read_cues_from_text(ENGLISH_SRT)
    text = format_srt(cues)
    assert text.startswith('1\n00:00:01,000 --> 00:00:02,500\nA man rides a bike along the beach\n\n2\n')
    assert parse_srt(text) == parse_srt(ENGLISH_SRT)
    assert format_srt([]) == ''


def read_cues_from_text(text: str):
    from executors.documents import CueDoc

    return [CueDoc(start=s, end=e, text=t, source='srt') for s, e, t in parse_srt(text)]


def test_ass_dialogue_lines_give_their_times_and_plain_text():
    text = ('[Script Info]\nScriptType: v4.00+\n\n[Events]\n'
            'Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n'
            'Dialogue: 0,0:00:03.50,0:00:05.00,Default,,0,0,0,,{\\i1}Wait,{\\i0} for me,\\Nplease\n'
            'Comment: 0,0:00:04.00,0:00:05.00,Default,,0,0,0,,not shown\n'
            'Dialogue: 0,0:00:01.00,0:00:02.25,Default,,0,0,0,,first line\n'
            'Dialogue: 0,bad,0:00:02.25,Default,,0,0,0,,no time\n')
    assert parse_ass(text) == [(1.0, 2.25, 'first line'), (3.5, 5.0, 'Wait, for me, please')]


def test_a_long_ass_line_in_a_stream_is_read_without_ffmpeg_s_srt_conversion(tmp_path):
    """ffmpeg's ASS -> SRT conversion took 16 s for a 0.9 MB line (and minutes for 6 MB): the stream is
    copied as ASS and its dialogue read here, so the cue is cut to MAX_CUE_CHARS as any other."""
    (tmp_path / 'lines.srt').write_text('1\n00:00:00,000 --> 00:00:01,000\n' + 'word ' * 20_000 + '\n\n'
                                       '2\n00:00:01,000 --> 00:00:02,000\nhello there\n')
    video = video_with_streams(tmp_path / 'long.mkv', [(tmp_path / 'lines.srt', 'eng')], duration=2, codec='ass')
    [first, second] = subtitle_cues(video, 'id')
    assert first.text.startswith('word word') and len(first.text) <= MAX_CUE_CHARS + 2
    assert (second.start, second.end, second.text, second.language) == (1.0, 2.0, 'hello there', 'en')
