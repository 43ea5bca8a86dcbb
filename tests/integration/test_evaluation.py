"""Retrieval evaluation: metrics on hand-ranked similarity matrices, captions CSV, frame cache, `flow.py eval`."""
import json

import numpy as np
import pytest

import evaluation
from evaluation import (Caption, FrameCache, evaluate_similarity, flow_settings, pooled_similarity, ranks,
                        read_captions, retrieval_metrics)
from executors.errors import VcedError
from flow import Flow, main
from tests.factories import make_captioned_videos


# ----------------------------------------------------------------------------- metrics


def test_perfect_ranking_scores_full_recall_and_rank_one():
    result = evaluate_similarity(np.eye(5), np.arange(5))
    for direction in ('text_to_video', 'video_to_text'):
        assert result[direction] == {'R@1': 100.0, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 1.0, 'MnR': 1.0}


def test_reversed_ranking_puts_every_correct_video_last():
    n = 12
    similarity = np.random.default_rng(0).uniform(0, 1, size=(n, n))
    similarity[np.arange(n), np.arange(n)] = -1.0  # the correct video scores lowest of all
    result = evaluate_similarity(similarity, np.arange(n))['text_to_video']
    assert result == {'R@1': 0.0, 'R@5': 0.0, 'R@10': 0.0, 'MdR': 12.0, 'MnR': 12.0}


def test_hand_ranked_matrix_both_directions():
    similarity = np.array([[0.9, 0.1, 0.2],   # caption 0: video 0 first -> rank 1
                           [0.8, 0.5, 0.3],   # caption 1: video 0 above video 1 -> rank 2
                           [0.7, 0.6, 0.4]])  # caption 2: video 2 last -> rank 3
    result = evaluate_similarity(similarity, np.array([0, 1, 2]))
    assert result['text_to_video'] == pytest.approx({'R@1': 100 / 3, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 2.0, 'MnR': 2.0})
    # video 0 over captions [.9 .8 .7] -> 1; video 1 over [.1 .5 .6] -> 2; video 2 over [.2 .3 .4] -> 1
    assert result['video_to_text'] == pytest.approx({'R@1': 200 / 3, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 1.0, 'MnR': 4 / 3})


def test_ties_count_against_the_correct_candidate():
    assert ranks(np.array([[0.5, 0.5, 0.1]]), np.array([[True, False, False]])).tolist() == [2]
    assert ranks(np.array([[0.5, 0.5, 0.5]]), np.array([[False, False, True]])).tolist() == [3]


def test_a_collapsed_model_scores_nothing():
    """Every embedding the same: all ties, so every query ranks last rather than first."""
    result = evaluate_similarity(np.full((4, 4), 0.3), np.arange(4))
    assert result['text_to_video']['R@1'] == 0.0
    assert result['text_to_video']['MdR'] == 4.0
    assert result['video_to_text']['MnR'] == 4.0


def test_duplicate_videos_tie_for_their_captions():
    similarity = np.array([[0.9, 0.9, 0.1],   # videos 0 and 1 are the same clip
                           [0.7, 0.7, 0.2],
                           [0.1, 0.1, 0.8]])
    result = evaluate_similarity(similarity, np.array([0, 1, 2]))
    assert ranks(similarity, np.eye(3, dtype=bool)).tolist() == [2, 2, 1]
    assert result['text_to_video']['R@1'] == pytest.approx(100 / 3)


def test_several_captions_per_video():
    """Each caption is a text->video query; a video counts its best-ranked own caption."""
    similarity = np.array([[0.2, 0.9],   # caption 0 of video 0 -> rank 2
                           [0.8, 0.1],   # caption 1 of video 0 -> rank 1
                           [0.3, 0.4],   # caption 2 of video 1 -> rank 1
                           [0.6, 0.5]])  # caption 3 of video 1 -> rank 2
    result = evaluate_similarity(similarity, np.array([0, 0, 1, 1]))
    assert result['text_to_video'] == {'R@1': 50.0, 'R@5': 100.0, 'R@10': 100.0, 'MdR': 1.5, 'MnR': 1.5}
    # video 0: best own caption 1 (.8) beats every other -> 1; video 1: best own .5, caption 0 (.9) above -> 2
    assert ranks(similarity.T, np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)).tolist() == [1, 2]
    assert result['video_to_text']['R@1'] == 50.0


def test_recall_at_k_counts_ranks_up_to_k():
    metrics = retrieval_metrics(np.array([1, 5, 6, 10, 11]))
    assert metrics == {'R@1': 20.0, 'R@5': 40.0, 'R@10': 80.0, 'MdR': 6.0, 'MnR': 6.6}


def test_ranks_rejects_a_query_without_a_correct_candidate():
    with pytest.raises(ValueError, match='query 1 has no relevant candidate'):
        ranks(np.eye(2), np.array([[True, False], [False, False]]))


def test_pooling_mean_and_max_by_hand():
    frames = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 2.0]])]
    text = np.array([[3.0, 0.0]])
    assert pooled_similarity(text, frames, 'mean') == pytest.approx(np.array([[np.sqrt(0.5), 0.0]]))
    assert pooled_similarity(text, frames, 'max') == pytest.approx(np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        pooled_similarity(text, frames, 'sum')


@pytest.mark.parametrize('pooling', ['mean', 'max'])
def test_perfect_embeddings_give_r1_100_and_mdr_1(pooling):
    rng = np.random.default_rng(0)
    videos = np.linalg.qr(rng.normal(size=(64, 64)))[0][:20]  # 20 orthonormal video directions
    frames = [v + 0.05 * rng.normal(size=(rng.integers(1, 13), 64)) for v in videos]
    text = np.repeat(videos, 2, axis=0)  # two captions per video, each its video's exact direction
    result = evaluate_similarity(pooled_similarity(text, frames, pooling), np.repeat(np.arange(20), 2))
    for direction in ('text_to_video', 'video_to_text'):
        assert result[direction]['R@1'] == 100.0
        assert result[direction]['MdR'] == 1.0


# ----------------------------------------------------------------------------- captions CSV


def test_reads_msrvtt_test_csv(tmp_path):
    path = tmp_path / 'test.csv'
    path.write_text('\ufeffkey,vid_key,video_id,sentence\n'
                    'ret0,msr7020,video7020,"a man, on a bike"\n'
                    'ret1,msr7021,video7021, a cat sleeps \n', encoding='utf-8')
    assert read_captions(path) == [Caption('video7020', 'a man, on a bike'), Caption('video7021', 'a cat sleeps')]


@pytest.mark.parametrize('text, reason', [
    ('', 'empty file'),
    ('video_id,sentence\n', r'no captions \(only a header\)'),
    ('video,caption\nv1,hello\n', r'no video_id or sentence column \(found: video, caption\)'),
    ('video_id,text\nv1,hello\n', r'no sentence column'),
    ('video_id,sentence\nv1,hello\n,nobody\n', ':3: video_id is blank'),
    ('video_id,sentence\nv1,\n', ':2: sentence is blank'),
])
def test_malformed_csv_names_the_file_and_the_reason(tmp_path, text, reason):
    path = tmp_path / 'bad.csv'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(VcedError, match=f'bad.csv.*{reason}'):
        read_captions(path)


def test_missing_and_binary_csv(tmp_path):
    with pytest.raises(VcedError, match='nothing.csv: cannot read the captions file'):
        read_captions(tmp_path / 'nothing.csv')
    (tmp_path / 'binary.csv').write_bytes(b'\xff\xfe\x00\x81garbage')
    with pytest.raises(VcedError, match='binary.csv: not a UTF-8 CSV file'):
        read_captions(tmp_path / 'binary.csv')


def test_dataset_skips_captions_whose_video_is_missing(tmp_path):
    (tmp_path / 'videos' / 'sub').mkdir(parents=True)
    (tmp_path / 'videos' / 'a.mp4').write_bytes(b'x')
    (tmp_path / 'videos' / 'sub' / 'b.webm').write_bytes(b'x')
    captions = tmp_path / 'c.csv'
    captions.write_text('video_id,sentence\na,one\nb,two\nc,three\nc,four\nd,five\na,six\n', encoding='utf-8')
    dataset = evaluation.load_dataset(tmp_path / 'videos', captions)
    assert [c.sentence for c in dataset.captions] == ['one', 'two', 'six']
    assert list(dataset.videos) == ['a', 'b']
    assert dataset.missing == ['c', 'd'] and dataset.skipped == 3
    captions.write_text('video_id,sentence\nx,one\n', encoding='utf-8')
    with pytest.raises(VcedError, match=r'none of its 1 videos is in .*x\.mp4'):
        evaluation.load_dataset(tmp_path / 'videos', captions)


# ----------------------------------------------------------------------------- frame cache


def test_frame_cache_round_trip_and_keys(tmp_path, tiny_checkpoint):
    flow = tmp_path / 'flow.yml'
    flow.write_text('with: {model: ViT-B/32, workspace: w}\nexecutors:\n  - uses: VideoLoader\n', encoding='utf-8')
    settings = flow_settings(Flow(flow, strategy='count', count=12).settings)
    cache = FrameCache(tmp_path / 'cache', settings)
    assert cache.get('abc') is None
    cache.put('abc', np.arange(6, dtype=np.float32).reshape(2, 3))
    assert cache.get('abc').tolist() == [[0, 1, 2], [3, 4, 5]]
    assert not list((tmp_path / 'cache').rglob('*.tmp'))
    same = FrameCache(tmp_path / 'cache', flow_settings(Flow(flow, strategy='count', count=12, workspace='x').settings))
    assert same.get('abc') is not None  # the workspace is where the cache lives, not what it holds
    for other in ({'strategy': 'count', 'count': 8}, {'strategy': 'uniform', 'count': 12},
                  {'strategy': 'count', 'count': 12, 'model': str(tiny_checkpoint)}):
        assert FrameCache(tmp_path / 'cache', flow_settings(Flow(flow, **other).settings)).get('abc') is None


def test_frame_cache_reports_a_corrupt_entry(tmp_path):
    flow = tmp_path / 'flow.yml'
    flow.write_text('executors:\n  - uses: VideoLoader\n', encoding='utf-8')
    cache = FrameCache(tmp_path / 'cache', flow_settings(Flow(flow).settings))
    cache.path('abc').parent.mkdir(parents=True)
    cache.path('abc').write_bytes(b'not numpy')
    with pytest.raises(VcedError, match='abc.npy: unreadable cache entry'):
        cache.get('abc')


# ----------------------------------------------------------------------------- flow.py eval, end to end


@pytest.fixture(scope='module')
def mini_set(tmp_path_factory):
    """Three short clips, four captions (two for video0) and a caption whose video is missing."""
    folder = tmp_path_factory.mktemp('msrvtt')
    sources = {'video0': 'testsrc2', 'video1': 'smptebars', 'video2': 'color=c=red'}
    captions = [('video0', 'a moving test pattern'), ('video0', 'colours and a clock'), ('video1', 'colour bars'),
                ('video2', 'a red screen'), ('video9', 'a clip nobody has')]
    return make_captioned_videos(folder, sources, captions, duration=1.0)


def test_eval_reports_every_metric_then_reads_the_frame_cache(mini_set, flow_args, workspace, capsys):
    videos, captions = mini_set
    argv = ['eval', *flow_args, '--videos', str(videos), '--captions', str(captions), '--frames', '3', '--json']
    assert main(argv) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert (first['captions'], first['videos'], first['frames']) == (4, 3, 9)  # --frames reached the loader
    assert first['missing_videos'] == ['video9'] and first['skipped_captions'] == 1
    assert 'warning: 1 videos not found' in err and 'video9' in err
    assert first['cached_videos'] == 0
    for pooling in ('mean', 'max'):
        for direction in ('text_to_video', 'video_to_text'):
            metrics = first['results'][pooling][direction]
            assert set(metrics) == {'R@1', 'R@5', 'R@10', 'MdR', 'MnR'}
            assert metrics['R@5'] == 100.0  # 3 videos, 4 captions: every rank is at most 4
            assert 1 <= metrics['MdR'] <= 4 and 1 <= metrics['MnR'] <= 4
    assert len(list((workspace / 'eval_cache').rglob('*.npy'))) == 3

    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second['cached_videos'] == 3
    assert second['results'] == first['results']

    assert main(argv[:-3] + ['--frames', '2', '--json']) == 0  # other sampling: not read from the cache
    other = json.loads(capsys.readouterr().out)
    assert other['cached_videos'] == 0 and other['frames'] == 6


def test_eval_table_and_an_undecodable_video(mini_set, flow_args, tmp_path, capsys):
    videos, captions = mini_set
    broken = tmp_path / 'videos'
    broken.mkdir()
    for video in videos.iterdir():
        (broken / video.name).symlink_to(video)
    (broken / 'video9.mp4').write_bytes(b'not a video at all')
    assert main(['eval', *flow_args, '--videos', str(broken), '--captions', str(captions), '--frames', '2']) == 0
    out, err = capsys.readouterr()
    assert 'warning: 1 videos could not be decoded' in err and 'video9.mp4' in err
    lines = out.splitlines()
    assert lines[0].startswith('4 captions, 3 videos, 6 frames') and '1 captions skipped' in lines[0]
    assert lines[1].split() == ['direction', 'pooling', 'R@1', 'R@5', 'R@10', 'MdR', 'MnR']
    assert [line.split()[:2] for line in lines[2:]] == [['text->video', 'mean'], ['text->video', 'max'],
                                                        ['video->text', 'mean'], ['video->text', 'max']]


def test_eval_errors_name_the_file_and_the_reason(mini_set, flow_args, tmp_path, capsys):
    videos, _ = mini_set
    bad = tmp_path / 'bad.csv'
    bad.write_text('clip,caption\nvideo0,hello\n', encoding='utf-8')
    assert main(['eval', *flow_args, '--videos', str(videos), '--captions', str(bad)]) == 1
    assert capsys.readouterr().err == f'error: {bad}: no video_id or sentence column (found: clip, caption)\n'
    assert main(['eval', *flow_args, '--videos', str(tmp_path / 'nowhere'), '--captions', str(bad)]) == 1
    assert 'nowhere: not a folder of videos' in capsys.readouterr().err
    assert main(['eval', *flow_args, '--videos', str(videos), '--captions', str(bad), '--frames', '0']) == 1
    assert '--frames must be at least 1' in capsys.readouterr().err


def test_an_unreadable_video_fails_alone_and_is_not_cached(tmp_path):
    (tmp_path / 'empty.mp4').write_bytes(b'')
    flow_file = tmp_path / 'flow.yml'
    flow_file.write_text('executors:\n  - uses: VideoLoader\n', encoding='utf-8')
    cache = FrameCache(tmp_path / 'cache', flow_settings(Flow(flow_file).settings))

    class NothingToDecode:
        def embed_videos(self, paths):
            assert list(paths) == []
            return iter(())

    calls = []
    frames, failed, hits = evaluation.encode_videos(NothingToDecode(), {'empty': tmp_path / 'empty.mp4'}, cache,
                                                    progress=lambda *call: calls.append(call))
    assert frames == {} and hits == 0
    assert calls == [('videos', 1, 1)]
    assert failed == {'empty': 'empty.mp4: the file is empty (0 bytes)'}
    assert not (tmp_path / 'cache').exists()
