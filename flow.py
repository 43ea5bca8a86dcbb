"""VCED's command line: index videos, search them by a sentence or an image, list, delete, transcripts, eval.

    python flow.py index PATH...            python flow.py search "a man rides a bike" [--json]
    python flow.py list | delete ID | transcript ID | eval --videos DIR --captions FILE

Every command runs the library layer (library/), which drives the Flow built from flow.yml.
"""
import argparse
import json
import logging
import os
import sys
import time

import evaluation
from executors.documents import SCREEN
from executors.errors import VcedError
from library import (VIDEO_EXTENSIONS, IndexSummary, Library, Status, format_srt, format_time, json_text, match_record,
                     one_line, plural, read_image, time_range, video_record)
from library.pipeline import Flow  # noqa: F401 - `from flow import Flow` is the documented way to drive the Flow directly

OVERRIDES = ('workspace', 'model', 'text_model', 'asr', 'ocr', 'backend', 'uri')  # options that replace flow.yml's settings


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--flow', default='flow.yml', help='the flow file (default: flow.yml)')
    common.add_argument('--workspace', help='where the index lives (default: data/workspace, set in flow.yml)')
    common.add_argument('--model', help='CLIP model name (see clip.available_models()), checkpoint or tuned file')
    common.add_argument('--text-model', dest='text_model', help='clip | multilingual | auto: which text tower embeds queries')
    common.add_argument('--backend', help='local (the workspace folder, the default; hnswlib: its old name) | milvus')
    common.add_argument('--uri', help='the Milvus URI: a file for Milvus Lite, or http://host:19530')
    parser = argparse.ArgumentParser(prog='flow.py', description='VCED: find the moments in your videos that match a description.')
    commands = parser.add_subparsers(dest='command', required=True)

    index = commands.add_parser('index', parents=[common], help='index video files or folders')
    index.add_argument('paths', nargs='+', metavar='PATH', help='a video file or a folder (searched recursively)')
    index.add_argument('--asr', metavar='NAME|PATH|off', help='speech recognition model (default: set in flow.yml)')
    index.add_argument('--ocr', metavar='auto|off|PATH', help='on-screen text reading (default: set in flow.yml)')
    index.add_argument('--ray', metavar='local|ADDRESS', help="run flow.yml's executors on a Ray cluster (local: start one here)")

    find = commands.add_parser('search', parents=[common], help='find the moments matching a sentence or an image')
    find.add_argument('text', nargs='?', default='', help='what to look for, in words')
    find.add_argument('--image', metavar='FILE', help='look for moments like this image instead')
    find.add_argument('--video', metavar='CLIP', help='find where this clip comes from: the videos holding it, and where')
    find.add_argument('--top', type=int, default=10, metavar='N', help='how many results (default 10)')
    find.add_argument('--offset', type=int, default=0, metavar='N', help='skip the first N results (paging)')
    find.add_argument('--by', choices=['segment', 'video'], default='segment', help='rank segments or whole videos')
    find.add_argument('--in', dest='within', choices=['all', 'visual', 'speech', 'screen'], default='all',
                      help='search what is seen, what is said, the text on screen, or all (default)')
    find.add_argument('--json', action='store_true', help='print one JSON array')

    listing = commands.add_parser('list', parents=[common], help='list the indexed videos')
    listing.add_argument('--json', action='store_true', help='print one JSON array')

    delete = commands.add_parser('delete', parents=[common], help='remove a video from the index')
    delete.add_argument('video', metavar='VIDEO_ID_OR_PATH')

    duplicates = commands.add_parser('duplicates', parents=[common], help='groups of videos that share footage')
    duplicates.add_argument('--threshold', type=float, default=0.9, metavar='X',
                            help='least mean cosine of the aligned keyframes, 0-1 (default 0.9)')
    duplicates.add_argument('--json', action='store_true', help='print one JSON array')

    transcript = commands.add_parser('transcript', parents=[common], help="print a video's timed text as SRT")
    transcript.add_argument('video', metavar='VIDEO_ID_OR_PATH')
    transcript.add_argument('--source', choices=['speech', 'screen'], default='speech',
                            help='speech: subtitles or recognised speech (default); screen: the text shown on screen')

    evaluation.add_arguments(commands.add_parser('eval', parents=[common],
                                                 help='MSR-VTT-style retrieval metrics on a captioned video set'))
    _add_train(commands, common)
    add_serve_arguments(commands, common)
    return parser


def _add_train(commands, common) -> None:
    try:
        from training import command as training
    except ImportError:  # tuning is optional (torch-only installs without it still search)
        return
    training.add_arguments(commands.add_parser('train', parents=[common], help='tune retrieval on your videos and captions'))


def add_serve_arguments(commands, common) -> None:
    serve = commands.add_parser('serve', parents=[common], help='the HTTP API: search, add and delete videos over HTTP')
    serve.add_argument('--host', default='127.0.0.1', help='address to listen on (default 127.0.0.1; any other needs --token-file)')
    serve.add_argument('--port', type=int, default=8000, help='port to listen on (default 8000)')
    serve.add_argument('--asr', metavar='NAME|PATH|off', help='speech recognition model for indexing (default: set in flow.yml)')
    serve.add_argument('--token-file', metavar='F', help='bearer token hashes; a missing file is created with a new token, '
                                                         'printed once')
    serve.add_argument('--allow-dir', action='append', metavar='DIR',
                       help='a server-side folder POST /v1/videos may index (repeatable; default data/videos)')
    serve.add_argument('--upload-dir', metavar='DIR', help='where uploaded videos are saved (default: the first --allow-dir)')
    serve.add_argument('--max-upload-mb', type=int, default=2048, metavar='MB', help='the largest upload (default 2048)')
    serve.add_argument('--cors-origin', action='append', default=[], metavar='ORIGIN',
                       help='a browser origin allowed to call the API (repeatable; default none: CORS off)')


def _serve(args) -> int:
    from api import Settings, serve

    folders = args.allow_dir or ['data/videos']
    settings = Settings(allow_dirs=folders, upload_dir=args.upload_dir or folders[0], max_upload_mb=args.max_upload_mb,
                        cors_origins=args.cors_origin)
    return serve(lambda: open_library(args), settings, args.host, args.port, args.token_file)


def open_library(args) -> Library:
    return Library(args.flow, **{name: getattr(args, name, None) for name in OVERRIDES})


def _index(args) -> int:
    from tqdm import tqdm

    bars: dict[tuple[str, str], tqdm] = {}

    def progress(video, stage: str, done: int, total: int) -> None:
        """A bar per video for its keyframes (decoded, then embedded) and one for its speech."""
        kind = 'speech' if stage == 'speech' else 'frames'
        bar = bars.get((video.uri, kind))
        if bar is None:
            name = one_line(os.path.basename(video.uri))[:32]
            bar = bars[video.uri, kind] = tqdm(desc=f"{name} {'speech' if kind == 'speech' else ''}".strip(),
                                               unit='s' if kind == 'speech' else 'step', leave=False, file=sys.stderr,
                                               disable=None)
        bar.total = max(bar.total or 0, total if kind == 'speech' else 2 * total)
        bar.n = min(done, total) + (total if stage == 'encode' else 0)
        bar.refresh()

    started = time.monotonic()
    summary = IndexSummary()
    try:
        with open_library(args) as library:
            videos = library.index(args.paths, progress, ray=args.ray or '')
            for video in videos:
                for kind in ('frames', 'speech'):
                    if (video.uri, kind) in bars:
                        bars.pop((video.uri, kind)).close()
                summary.add(video)
                if video.status == Status.FAILED:
                    print(f'failed: {one_line(video.error)}', file=sys.stderr)
                else:
                    screen = sum(cue.source == SCREEN for cue in video.cues)
                    detail = (f" ({plural(video.frame_count or len(video.frames), 'frame')}, "
                              f"{plural(len(video.cues) - screen, 'cue')}){_on_screen(screen)}"
                              if video.status == Status.INDEXED else '')
                    print(f'{video.status}: {one_line(video.uri)}{detail}')
    finally:
        for bar in bars.values():
            bar.close()
        if summary.total:
            print(f"{summary.line()}; {plural(summary.frames, 'frame')} in {time.monotonic() - started:.1f} s")
    if not summary.total:
        raise VcedError(f"no video files in {one_line(', '.join(args.paths))} "
                        f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
    ok = summary.counts[Status.INDEXED] + summary.counts[Status.ALREADY_INDEXED]
    return 1 if summary.counts[Status.FAILED] and not ok else 0


def _search(args) -> int:
    if sum(map(bool, (args.text.strip(), args.image, args.video))) != 1:
        raise VcedError('search needs one of a text, --image FILE or --video CLIP')
    if args.top < 1 or args.offset < 0:
        raise VcedError(f'--top must be at least 1 and --offset at least 0, not {args.top} and {args.offset}')
    image = read_image(args.image) if args.image else None
    with open_library(args) as library:
        if args.video:
            matches = library.locate(args.video, top=args.top, offset=args.offset)
        else:
            matches = library.search(text=args.text, image=image, top=args.top, by=args.by, within=args.within,
                                     offset=args.offset)
    results = [match_record(m) for m in matches]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, allow_nan=False))
        return 0
    if not results:
        print('no matches: index some videos first (python flow.py index PATH)')
    for rank, r in enumerate(results, 1 + args.offset):
        said = f'  “{one_line(r["text"])[:60]}”' if r['text'] else ''
        print(f"{rank:>3}. {r['score']:.3f}  {time_range(r['start'], r['end'])}  {r['source']:<6}  "
              f"{one_line(r['video'])}{said}")
    return 0


def _duplicates(args) -> int:
    with open_library(args) as library:
        groups = library.duplicates(args.threshold)
    rows = [{'videos': [{'video': json_text(s.uri), 'video_id': s.video_id, 'start': round(s.start, 3),
                         'end': round(s.end, 3)} for s in g.videos], 'score': round(g.score, 4), 'part': g.part}
            for g in groups]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        return 0
    if not rows:
        print('no videos share footage')
    for n, group in enumerate(rows, 1):
        shared = '' if group['part'] == 'footage' else f" (only the {group['part']})"
        print(f"group {n}: {len(group['videos'])} videos, score {group['score']:.3f}{shared}")
        for v in group['videos']:
            print(f"  {v['video_id'][:12]}  {time_range(v['start'], v['end'])}  {one_line(v['video'])}")
    return 0


def _list(args) -> int:
    with open_library(args) as library:
        videos = library.videos()
    rows = [video_record(v) for v in videos]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, allow_nan=False))
        return 0
    if not rows:
        print('the index is empty: python flow.py index PATH')
    for r in rows:
        speech = f"{r['cues']:>5} cues" if r['cues'] else '  no speech'
        screen = f"{r['screen_texts']:>5} on screen" if r['screen_texts'] else ' no screen text'
        print(f"{r['video_id'][:12]}  {format_time(r['duration'])}  {r['frames']:>6} frames  {speech}  {screen}  "
              f"{r['added']}  {one_line(r['video'])}")
    return 0


def _delete(args) -> int:
    with open_library(args) as library:
        deleted = library.delete(args.video)
    for video in deleted:
        print(f'deleted {video.video_id[:12]}  {one_line(video.uri)}')
    return 0


def _transcript(args) -> int:
    with open_library(args) as library:
        cues = library.transcript(args.video, args.source)
    if not cues:
        what = 'on-screen text is' if args.source == SCREEN else 'subtitles or recognised speech are'
        raise VcedError(f'{one_line(args.video)}: no {what} stored for it')
    sys.stdout.write(format_srt(cues))
    return 0


def _eval(args) -> int:
    return evaluation.command(args)


def _train(args) -> int:
    from training import command as training

    return training.run(args)


def _on_screen(count: int) -> str:
    return f", {count} on screen" if count else ''


COMMANDS = {'index': _index, 'search': _search, 'duplicates': _duplicates, 'list': _list, 'delete': _delete,
            'transcript': _transcript,
            'eval': _eval, 'train': _train, 'serve': _serve}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: 0 on success, 1 on a user error (one line on stderr), 2 on bad usage."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        return COMMANDS[args.command](args)
    except VcedError as e:
        print(f'error: {one_line(str(e))}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
