"""The page takes every library option the CLI takes (one definition, library/options.py), and they reach
its Library: `streamlit run app.py -- --backend milvus --uri FILE` opens that Milvus Lite library."""
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import app  # the page's module: its main() runs only under streamlit
import flow
from library.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]


def cli_library_options() -> set[str]:
    """The shared options of the CLI's index and search commands (what a library and its searches need)."""
    parsers = {}
    commands = flow.Parser(prog='flow.py').add_subparsers(dest='command')
    for name in ('index', 'search'):
        parsers[name] = flow.COMMANDS[name].parser(commands)
    return {action.dest for parser in parsers.values() for action in parser._actions if action.dest in OPTIONS}


def test_the_page_takes_every_library_option_of_the_cli():
    names = cli_library_options()
    assert names >= {'flow', 'workspace', 'model', 'text_model', 'asr', 'ocr', 'backend', 'uri'}
    argv = []
    values = {'text_model': 'clip', 'backend': 'milvus'}
    for name in sorted(names):
        argv += [OPTIONS[name].flag, values.get(name, f'/some/{name}')]
    args = app.options(argv)
    assert args.flow == '/some/flow'
    assert args.overrides == {'workspace': '/some/workspace', 'model': '/some/model', 'text_model': 'clip',
                              'asr': '/some/asr', 'ocr': '/some/ocr', 'backend': 'milvus', 'uri': '/some/uri'}


def test_the_page_opens_the_milvus_library_the_cli_indexed(tmp_path, monkeypatch, tiny_checkpoint, sample_videos):
    uri = tmp_path / 'library.db'
    options = ['--workspace', str(tmp_path / 'ws'), '--backend', 'milvus', '--uri', str(uri)]
    indexed = subprocess.run([sys.executable, str(ROOT / 'flow.py'), 'index', str(sample_videos[0]), *options,
                              '--model', str(tiny_checkpoint), '--asr', 'off'], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
    assert indexed.returncode == 0, indexed.stderr
    monkeypatch.setattr(sys, 'argv', ['app.py', *options, '--model', str(tiny_checkpoint), '--text-model', 'clip',
                                      '--videos', str(tmp_path / 'uploads')])
    try:
        page = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=180).run()
        assert not page.exception and not page.error, [e.value for e in page.error]
        assert any(c.value.startswith('1 video · 00:03') for c in page.caption), [c.value for c in page.caption]
    finally:
        st.cache_resource.clear()  # closes the Library (Milvus Lite is one process at a time)


@pytest.mark.parametrize('argv', [['--backend', 'foo'], ['--text-model', 'klingon']])
def test_a_bad_value_is_refused_by_the_page_as_by_the_cli(argv):
    with pytest.raises(SystemExit):
        app.options(argv)
