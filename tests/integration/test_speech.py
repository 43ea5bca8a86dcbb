"""Speech: sentences synthesised by espeak-ng at known offsets are recognised by Whisper base, timed and worded."""
import logging
import re
from pathlib import Path

import pytest

from executors.models import whisper as speech
from executors.documents import CueDoc, DocList, VideoDoc
from executors.models.whisper import Recognizer, SpeechModelError, model_folder, model_for
from executors.speech_reader import SpeechReader, read_cues
from executors.video_loader import VideoLoader
from tests.factories import make_video
from tests.speech_fixtures import espeak, run_ffmpeg, speak, video_with_speech, video_with_tone, whisper_base, whole_videos  # noqa: F401

SENTENCE = 'The weather is lovely today, so we are going to the beach.'
OFFSET = 4.0  # seconds of silence before the sentence


def words(text: str) -> set[str]:
    return set(re.findall(r'[a-z]+', text.lower()))


@pytest.fixture(scope='module')
def spoken_video(tmp_path_factory, espeak) -> Path:
    folder = tmp_path_factory.mktemp('speech')
    return video_with_speech(folder / 'talk.mp4', speak(SENTENCE, folder / 'sentence.wav'), OFFSET, duration=12.0)


@pytest.fixture(scope='module')
def recognizer(whisper_base) -> Recognizer:
    return Recognizer(model_for(str(whisper_base), threads=2), beam_size=1)


def test_sentence_is_found_at_its_offset_with_its_words(spoken_video, recognizer):
    cues = recognizer.recognise(spoken_video, 'vid')
    assert cues, 'no speech recognised'
    found = words(' '.join(c.text for c in cues))
    assert len(found & words(SENTENCE)) >= 0.7 * len(words(SENTENCE)), found
    assert {c.source for c in cues} == {'asr'} and {c.language for c in cues} == {'en'}
    assert {c.video_id for c in cues} == {'vid'}
    assert abs(cues[0].start - OFFSET) < 1.0 and cues[-1].end <= 12.0 + 0.5


def test_chunks_keep_absolute_times(spoken_video, whisper_base):
    recognizer = Recognizer(model_for(str(whisper_base), threads=2), beam_size=1, chunk_seconds=30)
    recognizer.chunk_seconds = 3.0  # chunks of 3 s: the sentence starts in the second one
    seen = []
    cues = recognizer.recognise(spoken_video, progress=lambda done, total: seen.append((done, total)), duration=12.0)
    assert cues and cues[0].start >= 3.0 and abs(cues[0].start - OFFSET) < 1.5
    assert seen[-1][0] == seen[-1][1] == pytest.approx(12.0, abs=0.1) and len(seen) >= 4


def test_reader_recognises_only_without_subtitles(tmp_path, spoken_video, whisper_base):
    video = tmp_path / 'talk.mp4'
    video.write_bytes(spoken_video.read_bytes())
    docs = VideoLoader(workspace=str(tmp_path / 'ws'), chunk_frames=0).index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
    stages = []
    reader = SpeechReader(asr=str(whisper_base), threads=2, beam_size=1)
    docs = whole_videos(reader.index(docs, {'progress': lambda doc, stage, done, total: stages.append(stage)}))
    assert docs[0].cues and docs[0].cues[0].source == 'asr' and 'speech' in stages
    (tmp_path / 'talk.srt').write_text('1\n00:00:01,000 --> 00:00:02,000\nsubtitled\n', encoding='utf-8')
    docs[0].cues = DocList[CueDoc]()
    docs = whole_videos(reader.index(docs, {}))
    assert [(c.source, c.text) for c in docs[0].cues] == [('srt', 'subtitled')]


def test_a_videos_keyframes_go_on_while_its_speech_is_recognised(tmp_path, spoken_video, whisper_base):
    """A video of one piece does not wait at the reader: the executors after it read and encode its keyframes
    while its speech is recognised, and its cues follow in a last piece of their own."""
    video = tmp_path / 'talk.mp4'
    video.write_bytes(spoken_video.read_bytes())
    [loaded] = VideoLoader(workspace=str(tmp_path / 'ws'), chunk_frames=0).index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {})
    keyframes = len(loaded.frames)
    pieces = SpeechReader(asr=str(whisper_base), threads=2, beam_size=1).index(DocList[VideoDoc]([loaded]), {})
    [first] = next(pieces)
    assert (first.last_chunk, len(first.frames), len(first.cues), first.shots) == (False, keyframes, 0, [])
    [last] = next(pieces)
    assert last.last_chunk and not last.frames and last.cues and {c.source for c in last.cues} == {'asr'}
    assert last.shots == loaded.shots and next(pieces, None) is None


def test_video_without_audio_has_no_cues_and_loads_no_model(tmp_path):
    video = make_video(tmp_path / 'silent.mp4', duration=1, size='160x120')
    assert read_cues(VideoDoc(uri=str(video), video_id='v'), recognizer=pytest.fail) == []


def test_tone_without_speech_gives_no_cues(tmp_path, recognizer):
    assert recognizer.recognise(video_with_tone(tmp_path / 'tone.mp4')) == []


def test_offline_without_the_model_indexes_visually_with_one_notice(tmp_path, monkeypatch, caplog):
    def offline(name, folder):
        raise OSError('We could not connect to huggingface.co')

    import faster_whisper.utils
    monkeypatch.setattr(faster_whisper.utils, 'download_model', offline)
    tone = video_with_tone(tmp_path / 'tone.mp4')
    weights = tmp_path / 'weights'
    docs = DocList[VideoDoc]([VideoDoc(uri=str(tone), video_id=str(i)) for i in range(3)])
    with caplog.at_level(logging.WARNING):
        docs = SpeechReader(asr='base', weights=str(weights)).index(docs, {})
        docs = SpeechReader(asr='base', weights=str(weights)).index(docs, {})
    assert [len(d.cues) for d in docs] == [0, 0, 0]
    notices = [r.getMessage() for r in caplog.records if 'speech model' in r.getMessage()]
    assert len(notices) == 1, notices
    assert f"is not in {weights / 'faster-whisper-base'} and cannot be downloaded" in notices[0]
    assert '\n' not in notices[0] and not list(weights.iterdir())  # no half-downloaded folder left


def test_named_model_downloads_once_into_weights(tmp_path, whisper_base):
    calls = []

    def download(name, folder):
        calls.append(name)
        for part in whisper_base.iterdir():
            (Path(folder) / part.name).symlink_to(part)

    assert model_folder('base', tmp_path, download) == tmp_path / 'faster-whisper-base'
    assert model_folder('base', tmp_path, download) == tmp_path / 'faster-whisper-base'
    assert calls == ['base']


@pytest.mark.parametrize('asr, message', [('nonsense', "'nonsense' is neither a folder nor one of tiny"),
                                          ('.', 'has no model.bin')])
def test_bad_model_settings_name_the_choices(asr, message):
    with pytest.raises(SpeechModelError, match=message):
        model_folder(asr)


def test_model_loads_once_per_process(whisper_base):
    assert model_for(str(whisper_base), threads=2) is model_for(str(whisper_base), threads=2)
    assert speech.resolve_device('cpu') == ('cpu', 0, 'int8')
    assert speech.resolve_device('cuda:1') == ('cuda', 1, 'float16')
    with pytest.raises(SpeechModelError, match="cpu, cuda or cuda:N, not 'tpu'"):
        speech.resolve_device('tpu')


def test_a_sentence_after_silence_starts_at_its_first_word(tmp_path, espeak, recognizer):  # noqa: F811
    """Issue 24.3: a sentence after 3 s or more of silence started at the previous cue's end (-2.6 to -4.8 s)."""
    import wave

    first = speak('Our train leaves the station at half past seven.', tmp_path / 'first.wav')
    second = speak('She planted tomatoes in the garden behind the house.', tmp_path / 'second.wav')
    with wave.open(str(first)) as w:
        first_ends = 1.0 + w.getnframes() / w.getframerate()
    second_starts = first_ends + 4.0
    both = tmp_path / 'both.wav'
    run_ffmpeg(['-i', str(first), '-i', str(second), '-filter_complex',
                f'[0:a]adelay=1000:all=1[a];[1:a]adelay={int(second_starts * 1000)}:all=1[b];'
                '[a][b]amix=inputs=2:normalize=0[out]', '-map', '[out]', str(both)])
    video = video_with_speech(tmp_path / 'two.mp4', both, 0.0, duration=second_starts + 5.0)
    cues = recognizer.recognise(video, 'vid')
    [garden] = [c for c in cues if 'garden' in c.text.lower()]
    assert abs(garden.start - second_starts) <= 0.4, (garden, second_starts, cues)
    assert all(c.start >= 0.7 for c in cues), cues  # the first sentence starts at its first word, too
