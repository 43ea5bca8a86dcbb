"""Paging through results: every result of the full list reached page by page, in the same order,
whatever the page size (the Library, which the page, the CLI and the Python API all use)."""
import pytest

from library import Library
from tests.factories import make_video

SOURCES = ['testsrc', 'testsrc2', 'smptebars', 'rgbtestsrc', 'mandelbrot', 'life']


def cues(count: int, words: str) -> str:
    return ''.join(f'{i + 1}\n00:00:{4 * i:02d},000 --> 00:00:{4 * i:02d},800\n{words} {i}\n\n' for i in range(count))


@pytest.fixture(scope='module')
def library(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp('paging')
    paths = []
    for n, source in enumerate(SOURCES):
        path = make_video(folder / f'{source}.mp4', duration=12, source=source)
        # cues far apart enough not to merge: many spoken segments beside the visual ones
        (folder / f'{source}.srt').write_text(cues(3, 'a red screen' if n % 2 else 'red'), encoding='utf-8')
        paths.append(path)
    lib = Library(flow='flow.yml', workspace=str(folder / 'ws'), model=str(tiny_checkpoint), text_model='clip',
                  asr='off')
    assert all(v.status == 'indexed' for v in lib.index(paths))
    yield lib
    lib.close()


def key(match) -> tuple:
    return match.video_id, match.start, match.end, match.source


@pytest.mark.parametrize('within', ['all', 'visual', 'speech'])
def test_pages_reach_every_result_and_asking_for_all_returns_all(library, within):
    everything = library.search('a red screen', top=100, within=within)
    assert 5 < len(everything) < 100
    assert len(library.search('a red screen', top=len(everything), within=within)) == len(everything)
    for size in (1, 5, 7):
        paged = []
        while page := library.search('a red screen', top=size, offset=len(paged), within=within):
            paged += page
        assert [key(m) for m in paged] == [key(m) for m in everything], size
