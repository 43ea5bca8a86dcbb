"""The Flow: building executors from flow.yml, routing endpoints, closing, config errors."""
import sys
import time

import pytest

from executors.base import Executor, requests
from executors.documents import DocList, QueryDoc, VideoDoc
from executors.errors import ConfigError
from library import find_videos, format_time
from library.pipeline import BACKGROUND_NICENESS, Flow

EVENTS: list[str] = []


class Tagger(Executor):
    """Appends its tag to each video's error field, so the order of stages is visible."""

    def __init__(self, tag: str, workspace: str = '', delay: float = 0.0):
        if not tag:
            raise ValueError('tag must not be empty')
        self.tag, self.workspace, self.delay = tag, workspace, delay

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc], parameters):
        EVENTS.append(f'{self.tag} start {docs[0].uri}')
        time.sleep(self.delay)
        for doc in docs:
            doc.error += self.tag + parameters.get('suffix', '')
        EVENTS.append(f'{self.tag} end {docs[0].uri}')
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[QueryDoc]):
        for doc in docs:
            doc.text += self.tag
        return docs

    def close(self):
        EVENTS.append(f'close {self.tag}')


class NotAnExecutor:
    pass


def write_flow(tmp_path, body: str):
    path = tmp_path / 'flow.yml'
    path.write_text(body)
    return path


TWO_STAGES = """with:
  workspace: shared-ws
executors:
  - uses: tests.integration.test_flow.Tagger
    with:
      tag: A
  - uses: tests.integration.test_flow.Tagger
    with:
      tag: B
      workspace: own-ws
"""


@pytest.fixture(autouse=True)
def clear_events():
    EVENTS.clear()


def test_post_runs_every_executor_in_order_with_parameters(tmp_path):
    with Flow(write_flow(tmp_path, TWO_STAGES)) as flow:
        out = flow.post('/index', DocList[VideoDoc]([VideoDoc(uri='v')]), parameters={'suffix': '.'})
    assert out[0].error == 'A.B.'


def test_docs_of_an_unhandled_type_pass_through_unchanged(tmp_path):
    with Flow(write_flow(tmp_path, TWO_STAGES)) as flow:
        out = flow.post('/index', DocList[QueryDoc]([QueryDoc(text='q')]))
        assert out[0].text == 'q'
        assert flow.post('/search', DocList[QueryDoc]([QueryDoc(text='q')]))[0].text == 'qAB'


def test_exit_closes_every_executor_last_first(tmp_path):
    with Flow(write_flow(tmp_path, TWO_STAGES)):
        assert EVENTS == []
    assert EVENTS == ['close B', 'close A']


def test_shared_parameters_reach_executors_that_take_them_and_overrides_win(tmp_path):
    path = write_flow(tmp_path, TWO_STAGES)
    with Flow(path) as flow:
        assert [e.workspace for e in flow.executors] == ['shared-ws', 'own-ws']
    with Flow(path, workspace='cli-ws', model='ignored-by-taggers') as flow:
        assert [e.workspace for e in flow.executors] == ['cli-ws', 'cli-ws']


def test_stream_decodes_the_next_request_while_the_rest_work_on_the_current(tmp_path):
    body = TWO_STAGES.replace('tag: A', 'tag: A\n      delay: 0.2').replace('tag: B', 'tag: B\n      delay: 0.2')
    requests_ = (DocList[VideoDoc]([VideoDoc(uri=name)]) for name in ['v1', 'v2', 'v3'])
    with Flow(write_flow(tmp_path, body)) as flow:
        results = [docs[0].uri for docs in flow.stream('/index', requests_)]
    assert results == ['v1', 'v2', 'v3']
    # A starts on v2 before B has finished v1
    assert EVENTS.index('A start v2') < EVENTS.index('B end v1')


def test_unknown_endpoint_is_a_config_error_listing_the_known_ones(tmp_path):
    with Flow(write_flow(tmp_path, TWO_STAGES)) as flow:
        with pytest.raises(ConfigError, match=r"unknown endpoint '/nope'.*/index, /search"):
            flow.post('/nope')


@pytest.mark.parametrize('body, message', [
    ('executors:\n  - uses: NoSuchExecutor\n', r"flow.yml:2: unknown executor 'NoSuchExecutor'"),
    ('executors:\n  - uses: tests.integration.test_flow.NotAnExecutor\n', r"flow.yml:2: unknown executor"),
    ('executors:\n  - uses: tests.integration.test_flow.Tagger\n    with:\n      tag: A\n      colour: red\n',
     r"flow.yml:5: tests.integration.test_flow.Tagger has no parameter 'colour' \(it takes tag, workspace, delay\)"),
    ('executors:\n  - uses: tests.integration.test_flow.Tagger\n    with:\n      tag: ""\n',
     r'flow.yml:2: tests.integration.test_flow.Tagger: tag must not be empty'),
    ('executors:\n  - uses: tests.integration.test_flow.Tagger\n    wiht:\n      tag: A\n', r"flow.yml:2: unknown key 'wiht'"),
    ('executors: []\n', r"needs an 'executors:' list"),
    ('executors:\n  - [unclosed\n', r'not valid YAML'),
])
def test_config_errors_name_the_flow_file_line(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        Flow(write_flow(tmp_path, body))


def test_a_failing_executor_closes_the_ones_already_built(tmp_path):
    body = TWO_STAGES + '  - uses: tests.integration.test_flow.Tagger\n    with:\n      tag: ""\n'
    with pytest.raises(ConfigError):
        Flow(write_flow(tmp_path, body))
    assert EVENTS == ['close B', 'close A']


def test_missing_flow_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='nope.yml: cannot read the flow file'):
        Flow(tmp_path / 'nope.yml')


def test_the_repository_flow_names_existing_executors():
    from executors.registry import executor_class
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / 'flow.yml').read_text())
    assert [executor_class(e['uses']).__name__ for e in config['executors']] == [
        'VideoLoader', 'SpeechReader', 'ScreenTextReader', 'ImageEncoder', 'TextEncoder', 'Indexer']


def test_an_unknown_executor_is_named_with_the_known_ones(tmp_path):
    (tmp_path / 'flow.yml').write_text('executors:\n  - uses: OCRReader\n')
    with pytest.raises(ConfigError, match=r"flow.yml:2: unknown executor 'OCRReader' \(known: VideoLoader, SpeechReader, "
                                          r"ScreenTextReader, ImageEncoder, TextEncoder, Indexer"):
        Flow(tmp_path / 'flow.yml')


def test_find_videos_walks_folders_recursively_and_survives_symlink_loops(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    for name in ['a/one.mp4', 'a/b/two.MKV', 'a/notes.txt', 'a/b/three.webm']:
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'a' / 'b' / 'loop').symlink_to(tmp_path / 'a')
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos([tmp_path / 'a'])]
    assert found == ['a/one.mp4', 'a/b/three.webm', 'a/b/two.MKV']
    assert list(find_videos([tmp_path / 'x.mp4'])) == [tmp_path / 'x.mp4']


@pytest.mark.parametrize('seconds, text', [(0, '00:00'), (59.9, '00:59'), (61, '01:01'), (3600, '1:00:00'),
                                            (3725.5, '1:02:05')])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


class Parent(Executor):
    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]):
        for doc in docs:
            doc.error += 'parent'
        return docs


class Child(Parent):
    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]):
        for doc in docs:
            doc.error += 'child'
        return docs


def test_a_subclass_handler_replaces_the_one_it_overrides():
    docs = Child().handle('/index', DocList[VideoDoc]([VideoDoc(uri='x')]), {})
    assert docs[0].error == 'child'


class Thread(Executor):
    """Records the thread each request ran in; fails on a video named 'boom'."""

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]):
        import threading

        if docs[0].uri == 'boom':
            raise ValueError('boom failed')
        for doc in docs:
            doc.error = threading.current_thread().name
        return docs


def test_post_runs_in_the_calling_thread_and_stream_raises_a_stage_error_in_order(tmp_path):
    import threading

    body = 'executors:\n  - uses: tests.integration.test_flow.Thread\n  - uses: tests.integration.test_flow.Tagger\n    with:\n      tag: T\n'
    with Flow(write_flow(tmp_path, body)) as flow:
        assert flow.post('/index', DocList[VideoDoc]([VideoDoc(uri='a')]))[0].error == threading.current_thread().name + 'T'
        requests_ = (DocList[VideoDoc]([VideoDoc(uri=u)]) for u in ['v1', 'boom', 'v3'])
        results = flow.stream('/index', requests_)
        assert next(results)[0].uri == 'v1'
        with pytest.raises(ValueError, match='boom failed'):
            next(results)
    assert not [t for t in threading.enumerate() if t.name.startswith('flow-')]  # every stage's thread ended


def test_a_consumer_that_stops_early_stops_every_stage(tmp_path):
    import threading

    with Flow(write_flow(tmp_path, TWO_STAGES)) as flow:
        results = flow.stream('/index', (DocList[VideoDoc]([VideoDoc(uri=f'v{i}')]) for i in range(100)))
        assert next(results)[0].uri == 'v0'
        results.close()
    assert not [t for t in threading.enumerate() if t.name.startswith('flow-')]


class Niceness(Executor):
    """Records, in each video's error field, its thread's niceness and that of a process the thread starts."""

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]):
        import os
        import subprocess
        import threading

        thread = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        child = subprocess.run([sys.executable, '-c', 'import os; print(os.getpriority(os.PRIO_PROCESS, 0))'],
                               capture_output=True, text=True, check=True).stdout.strip()
        for doc in docs:
            doc.error += f'{type(self).__name__} {thread} {child};'
        return docs


class BackgroundNiceness(Niceness):
    background = True


@pytest.mark.skipif(sys.platform != 'linux', reason='a niceness of its own per thread is Linux')
def test_a_background_stage_and_what_it_starts_yield_the_cpu_and_the_others_do_not(tmp_path):
    """Speech recognition (not background) keeps its cores while decoding and CLIP (background) fill the gaps."""
    import os

    body = ('executors:\n  - uses: tests.integration.test_flow.BackgroundNiceness\n'
            '  - uses: tests.integration.test_flow.Niceness\n')
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    with Flow(write_flow(tmp_path, body)) as flow:
        [docs] = flow.stream('/index', [DocList[VideoDoc]([VideoDoc(uri='v')])])
        assert flow.post('/index', DocList[VideoDoc]([VideoDoc(uri='w')]))[0].error == \
            f'BackgroundNiceness {ours} {ours};Niceness {ours} {ours};'  # a search or a post runs in the caller's thread
    nicer = min(ours + BACKGROUND_NICENESS, 19)
    assert docs[0].error == f'BackgroundNiceness {nicer} {nicer};Niceness {ours} {ours};'
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
