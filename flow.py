"""VCED's command line: index and search videos, list, delete, transcripts, duplicates, eval, train, serve (HTTP).

    python flow.py index PATH...            python flow.py search "a man rides a bike" [--json]
    python flow.py list | delete ID | transcript ID | eval --videos DIR --captions FILE

Every command runs the library layer (library/), which drives the Flow built from flow.yml. Each command
is a parser builder and a handler in COMMANDS; the options it shares with the page are library/options.py's.
"""
import argparse
import json
import logging
import os
import sys
import time
from contextlib import closing
from typing import Callable, NamedTuple

import evaluation
from executors.errors import VcedError
from executors.documents import SCREEN
from library import (VIDEO_EXTENSIONS, IndexSummary, Library, Status, duplicate_lines, duplicate_record, format_srt,
                     match_record, one_line, outcome_line, plural, read_image, time_range, video_line, video_record)
from library.options import ORIGIN, Parser, add_options, flow_path, overrides
from library.progress import TerminalBars
from library.pipeline import Flow  # noqa: F401 - `from flow import Flow` is the documented way to drive the Flow directly

PROG = 'vced' if os.path.basename(sys.argv[0]) == 'vced' else 'flow.py'  # as the user called it
READING = ('flow', 'workspace', 'backend', 'uri')  # what every command reading a library takes


class UsageError(Exception):
    """Options that parse but do not go together: exit 2, like the parser's own errors."""


def open_library(args, create: bool = True) -> Library:
    """The library the options name; `create=False`: only one that exists (reading commands)."""
    return Library(flow_path(args), origin=ORIGIN, create=create, **overrides(args))


# ----------------------------------------------------------------------------- index

def index_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('index', help='index video files or folders')
    parser.add_argument('paths', nargs='+', metavar='PATH', help='a video file or a folder (searched recursively)')
    add_options(parser, *READING, 'model', 'asr', 'ocr')
    parser.add_argument('--ray', metavar='local|ADDRESS', help="run flow.yml's executors on a Ray cluster (local: start one here)")
    return parser


def index(args) -> int:
    """One line per video, then the summary; exit 1 when any file failed (after the summary)."""
    bars = TerminalBars()
    started, summary = time.monotonic(), IndexSummary()
    try:
        with open_library(args) as library, closing(library.index(args.paths, bars.progress, ray=args.ray or '')) as videos:
            for video in videos:
                bars.close(video.uri)
                summary.add(video)
                if video.status == Status.FAILED:
                    print(f'failed: {one_line(video.error)}', file=sys.stderr)
                else:
                    print(outcome_line(video), flush=True)
    finally:
        bars.close()
        if summary.total:
            print(f"{summary.line()}; {plural(summary.frames, 'frame')} in {time.monotonic() - started:.1f} s")
    if not summary.total:
        raise VcedError(f"no video files in {one_line(', '.join(args.paths))} "
                        f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
    return 1 if summary.counts[Status.FAILED] else 0


# ----------------------------------------------------------------------------- search

def search_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('search', help='find the moments matching a sentence or an image')
    parser.add_argument('text', nargs='?', default='', help='what to look for, in words')
    parser.add_argument('--image', metavar='FILE', help='look for moments like this image instead')
    parser.add_argument('--video', metavar='CLIP', help='find where this clip comes from: the videos holding it, and where')
    parser.add_argument('--top', type=int, default=10, metavar='N', help='how many results (default 10)')
    parser.add_argument('--offset', type=int, default=0, metavar='N', help='skip the first N results (paging)')
    parser.add_argument('--by', choices=['segment', 'video'], default='segment', help='rank segments or whole videos')
    parser.add_argument('--in', dest='within', choices=['all', 'visual', 'speech', SCREEN], default='all',
                        help='search what is seen, what is said, the text on screen, or all (default)')
    parser.add_argument('--json', action='store_true', help='print one JSON array')
    add_options(parser, *READING, 'model', 'text_model')
    return parser


def search(args) -> int:
    _check_query(args)
    image = read_image(args.image) if args.image else None
    with open_library(args, create=False) as library:
        if args.video:
            matches = library.locate(args.video, top=args.top, offset=args.offset)
        else:
            matches = library.search(text=args.text, image=image, top=args.top, by=args.by, within=args.within,
                                     offset=args.offset)
        empty = not matches and not library.videos()
    results = [match_record(m) for m in matches]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, allow_nan=False))
        return 0
    if not results:
        print('no matches: the library is empty (python flow.py index PATH)' if empty else
              'no matches' + (f' after the first {args.offset}' if args.offset else ''))
    for rank, r in enumerate(results, 1 + args.offset):
        said = f'  “{one_line(r["text"])[:60]}”' if r['text'] else ''
        print(f"{rank:>3}. {r['score']:.3f}  {time_range(r['start'], r['end'])}  {r['source']:<6}  "
              f"{one_line(r['video'])}{said}")
    return 0


def _check_query(args) -> None:
    given = sum(map(bool, (args.text.strip(), args.image, args.video)))
    if given > 1:
        raise UsageError('give one of a text, --image FILE or --video CLIP, not several')
    if not given:
        raise UsageError('search needs a text, --image FILE or --video CLIP')
    if args.video and (args.by != 'segment' or args.within != 'all'):
        raise UsageError('--video finds where a clip comes from: it takes no --by or --in')
    if args.top < 1 or args.offset < 0:
        raise UsageError(f'--top must be at least 1 and --offset at least 0, not {args.top} and {args.offset}')
    said = {'speech': 'what is said', SCREEN: 'the text on screen'}.get(args.within)
    if args.image and said:
        raise UsageError(f'--in {args.within} searches {said}: it takes a text, not --image')
    if args.by == 'video' and said:
        raise UsageError(f'--by video ranks videos by what they show: it does not go with --in {args.within}')


# ----------------------------------------------------------------------------- duplicates

def duplicates_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('duplicates', help='groups of videos that share footage')
    parser.add_argument('--threshold', type=float, default=0.9, metavar='X',
                        help='least mean cosine of the aligned keyframes, 0-1 (default 0.9)')
    parser.add_argument('--json', action='store_true', help='print one JSON array')
    add_options(parser, *READING)
    return parser


def duplicates(args) -> int:
    with open_library(args, create=False) as library:
        groups = library.duplicates(args.threshold)
    rows = [duplicate_record(g) for g in groups]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        return 0
    print('\n'.join(line for n, group in enumerate(rows, 1) for line in duplicate_lines(n, group))
          or 'no videos share footage')
    return 0


# ----------------------------------------------------------------------------- list, delete, transcript

def list_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('list', help='list the indexed videos')
    parser.add_argument('--json', action='store_true', help='print one JSON array')
    add_options(parser, *READING)
    return parser


def list_videos(args) -> int:
    with open_library(args, create=False) as library:
        videos = library.videos()
    rows = [video_record(v) for v in videos]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        return 0
    print('\n'.join(map(video_line, rows)) or 'the library is empty: python flow.py index PATH')
    return 0


def delete_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('delete', help='remove a video from the library (the file stays)')
    parser.add_argument('video', metavar='VIDEO_ID_OR_PATH', help='a video id, a prefix of 6+ characters, or its path')
    add_options(parser, *READING)
    return parser


def delete(args) -> int:
    with open_library(args, create=False) as library:
        deleted = library.delete(args.video)
    for video in deleted:
        print(f'deleted {video.video_id[:12]}  {one_line(video.uri)}')
    return 0


def transcript_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('transcript', help="print a video's timed text as SRT")
    parser.add_argument('video', metavar='VIDEO_ID_OR_PATH', help='a video id, a prefix of 6+ characters, or its path')
    parser.add_argument('--source', choices=['speech', SCREEN], default='speech',
                        help='speech: subtitles or recognised speech (default); screen: the text shown on screen')
    add_options(parser, *READING)
    return parser


def transcript(args) -> int:
    with open_library(args, create=False) as library:
        cues = library.transcript(args.video, args.source)
    if not cues:
        what = 'on-screen text is' if args.source == SCREEN else 'subtitles or recognised speech are'
        raise VcedError(f'{one_line(args.video)}: no {what} stored for it')
    sys.stdout.write(format_srt(cues))
    return 0


# ----------------------------------------------------------------------------- eval, train, serve

def eval_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('eval', help='MSR-VTT-style retrieval metrics on a captioned video set')
    evaluation.add_arguments(parser)
    add_options(parser, 'flow', 'workspace', 'model', 'text_model', 'strategy')
    return parser


def evaluate(args) -> int:
    if args.frames is not None and args.strategy != 'count':
        raise UsageError(f'--frames sets how many frames --strategy count takes; {args.strategy} ignores it')
    return evaluation.command(args)


def train_parser(commands) -> argparse.ArgumentParser | None:
    try:
        from training import command as training
    except ImportError:  # tuning is optional (torch-only installs without it still search)
        return None
    parser = commands.add_parser('train', help='tune retrieval on your videos and captions')
    training.add_arguments(parser)
    add_options(parser, 'flow', 'workspace', 'model', 'device')
    return parser


def train(args) -> int:
    from training import command as training

    return training.run(args)


def serve_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser('serve', help='the HTTP API: search, add and delete videos over HTTP')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default 127.0.0.1; any other needs --token-file)')
    parser.add_argument('--port', type=int, default=8000, help='port to listen on (default 8000)')
    parser.add_argument('--token-file', metavar='F', help='bearer token hashes (a missing file: made with a new token, printed once)')
    parser.add_argument('--allow-dir', action='append', metavar='DIR',
                        help='a server-side folder POST /v1/videos may index (repeatable; default data/videos)')
    parser.add_argument('--upload-dir', metavar='DIR', help='where uploaded videos are saved (default: the first --allow-dir)')
    parser.add_argument('--max-upload-mb', type=int, default=2048, metavar='MB', help='the largest upload (default 2048)')
    parser.add_argument('--cors-origin', action='append', default=[], metavar='ORIGIN',
                        help='a browser origin allowed to call the API (repeatable; default none: CORS off)')
    add_options(parser, *READING, 'model', 'text_model', 'asr', 'ocr')
    return parser


def serve(args) -> int:
    from api import Settings, serve as serve_api

    folders = args.allow_dir or ['data/videos']
    settings = Settings(allow_dirs=folders, upload_dir=args.upload_dir or folders[0], max_upload_mb=args.max_upload_mb,
                        cors_origins=args.cors_origin)
    return serve_api(lambda: open_library(args), settings, args.host, args.port, args.token_file)


# ----------------------------------------------------------------------------- the table and main

class Command(NamedTuple):
    parser: Callable  # parser(commands) adds the subcommand's parser (None: not available here)
    run: Callable     # run(args) -> exit status
    quick_exit: bool = False  # nothing is left running once run() returns: the process may skip Python's teardown


COMMANDS = {
    'index': Command(index_parser, index),
    'search': Command(search_parser, search, quick_exit=True),
    'duplicates': Command(duplicates_parser, duplicates, quick_exit=True),
    'list': Command(list_parser, list_videos, quick_exit=True),
    'delete': Command(delete_parser, delete, quick_exit=True),
    'transcript': Command(transcript_parser, transcript, quick_exit=True),
    'eval': Command(eval_parser, evaluate),
    'train': Command(train_parser, train),
    'serve': Command(serve_parser, serve),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line; an option the command does not take is one line naming the command, exit 2."""
    top = Parser(prog=PROG, description='VCED: find the moments in your videos that match a description.')
    commands = top.add_subparsers(dest='command', required=True, parser_class=Parser)
    parsers = {name: command.parser(commands) for name, command in COMMANDS.items()}
    args, extra = top.parse_known_args(argv)
    if extra:
        parsers[args.command].error(f"{args.command} does not take {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: 0 on success, 1 on a user error (one line on stderr), 2 on bad usage, 141 when the
    reader of stdout went away (`| head`: the rest is not printed, and what was done is saved)."""
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        code = COMMANDS[args.command].run(args)
        sys.stdout.flush()  # here, where a reader gone away is a BrokenPipeError we handle, not at exit
        return code
    except UsageError as e:
        print(f'error: {e} (see {PROG} {args.command} --help)', file=sys.stderr)
        return 2
    except VcedError as e:
        print(f'error: {one_line(str(e))}', file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit stays quiet
        return 141
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


def run_cli() -> None:
    """`python flow.py` and `vced`. A quick_exit command skips the interpreter's teardown, which frees every
    imported module one by one (~0.1 s of a 0.5 s `list`, mostly docarray's and pydantic's)."""
    status = main()
    if COMMANDS[sys.argv[1]].quick_exit:
        sys.stdout.flush()  # stderr writes whole lines at once
        os._exit(status)
    sys.exit(status)


if __name__ == '__main__':
    run_cli()
