"""The Search tab's results: the player, a card per match (its strength in words and a bar, not the
raw score: that stays in the JSON of the CLI and API), and paging."""
import html
import math
from functools import partial
from pathlib import Path

import streamlit as st

from executors.documents import SegmentDoc
from library import Library, format_time, highlight, plural, shorten, time_range
from page.adding import escape_markdown as _markdown
from page.media_server import MediaServer

CARDS_PER_ROW = 4
STRENGTHS = [(0.9, 'best match'), (0.75, 'strong match'), (0.5, 'fair match'), (0.0, 'weak match')]
# `autoplay` alone sometimes left a loaded, visible, muted video paused at its start (Chromium 156: no play
# event after canplaythrough, about 1 new tab in 8); play() on a muted video needs no gesture and starts it.
START = '<script>(v => { v.muted = true; v.play().catch(() => {}); })(document.currentScript.previousElementSibling)</script>'
SOURCES = {'visual': 'seen', 'speech': 'said', 'screen': 'on screen'}  # the lists that can find a moment, in words
PLACEHOLDER = ('<div class="vced-spoken" style="aspect-ratio:16/9;display:flex;align-items:center;justify-content:'
               'center;border-radius:.5rem;background:#efe9fb;color:#6b4fbb;font-size:.95rem">'
               '&#128483;&nbsp;matched in what is said</div>')


def strength(score: float, best: float) -> tuple[float, str]:
    """How strong a match is next to the best of its search, as a fraction (0..1) and in words.

    Scores are only comparable within one search (a cosine for what is seen, a rank fusion of
    seen and said otherwise), so a match is judged against that search's best.
    """
    fraction = max(0.0, min(score / best, 1.0)) if best > 0 else 0.0
    return fraction, next(words for floor, words in STRENGTHS if fraction >= floor)


def strength_text(match: SegmentDoc, best: float) -> str:
    fraction, words = strength(match.score, best)
    filled = math.ceil(fraction * 5)
    found = ' and '.join(SOURCES.get(name, name) for name in (match.sources or [match.source]))
    return f'{"▰" * filled}{"▱" * (5 - filled)} {words} · {found}'


def results_ui(lib: Library, media: MediaServer, live: set[str]) -> None:
    query, matches = st.session_state.get('asked'), st.session_state.get('results')
    if matches is None:
        return
    if query.get('note'):
        st.info(query['note'], icon=':material/image_search:')
    if query.get('image') is not None:
        st.image(query['image'], width=160, caption=f'Searched by {query["label"]}')
    if query.get('video'):
        st.caption(f'Where the clip {_markdown(query["label"])} comes from: each result is the range of a video that '
                   'holds its footage, and plays from where the clip starts.')
    gone = [m for m in matches if m.video_id not in live]
    if gone:  # deleted meanwhile, in this page or another
        matches = st.session_state.results = [m for m in matches if m.video_id in live]
        st.caption(f'{plural(len(gone), "result")} left out: deleted from the library.')
    if not matches:
        st.info('No more results.' if query['offset'] else 'No video in the library holds this clip.' if query.get('video')
                else 'No matches. Try describing what is visible in other words.')
        paging_ui(query, 0)
        return
    first = query['offset'] + 1
    st.caption(f'{plural(len(matches), "result")} ({first}–{first + len(matches) - 1}) for “{shorten(query["label"], 80)}”')
    if query['by'] == 'video':
        st.caption('Whole videos are ranked by their mean score over all their keyframes, so a video that matches '
                   'throughout ranks above one with a single close moment (even the video an image was taken from); '
                   'choose **Moments** to rank single moments.')
    best = query.setdefault('best', matches[0].score)  # the first page's best: later pages are judged against it
    playing = min(st.session_state.get('playing', 0), len(matches) - 1)
    player_ui(lib, media, matches[playing], best)
    for row in range(0, len(matches), CARDS_PER_ROW):
        for column, rank in zip(st.columns(CARDS_PER_ROW), range(row, min(row + CARDS_PER_ROW, len(matches)))):
            with column:
                card_ui(rank, matches[rank], rank == playing, query['offset'], best)
    paging_ui(query, len(matches))


def player_ui(lib: Library, media: MediaServer, match: SegmentDoc, best: float) -> None:
    """The original file, streamed by the media server, playing (muted: what browsers allow) from the start.

    Keyed, so the browser keeps its <video> through the page's later runs (the models finishing loading, a
    video deleted elsewhere) even when something above it comes or goes: unkeyed, such a run made a new
    element that started the segment over. A new search or a Play click starts it afresh (`play`)."""
    video, info = st.container(border=True, key='player').columns([1, 1])
    with video:
        if Path(match.uri).is_file():
            url = f'{st.session_state.media_base}{media.publish(match.uri)}#t={match.start:.2f},{match.end:.2f}'
            st.html(f'<video src="{html.escape(url)}" data-play="{st.session_state.get("plays", 0)}" controls autoplay '
                    'muted playsinline preload="auto" style="width:100%;max-height:60vh;background:#000;'
                    f'border-radius:.5rem"></video>{START}', unsafe_allow_javascript=True)
            st.caption('Starts muted (browsers only autoplay silent video): unmute in the player.')
        else:
            st.warning(f'{match.uri} is no longer there: delete it in the Library tab and add it again.')
    with info:
        st.subheader(_markdown(Path(match.uri).name), anchor=False, help=match.uri)
        st.markdown(f'**{time_range(match.start, match.end)}** · {strength_text(match, best)}')
        if match.text:
            said_ui(match, 400)
        st.download_button('Download this segment', data=partial(lib.cut, match),
                           file_name=f'{Path(match.uri).stem} {time_range(match.start, match.end).replace(":", ".")}.mp4',
                           mime='video/mp4', on_click='ignore', icon=':material/download:',
                           disabled=not Path(match.uri).is_file())


def card_ui(rank: int, match: SegmentDoc, playing: bool, offset: int, best: float) -> None:
    with st.container(border=True):
        if match.thumbnail and Path(match.thumbnail).is_file():
            st.image(match.thumbnail, width='stretch')
        else:  # a moment found in what is said only: a picture of the same size keeps the rows aligned
            st.html(PLACEHOLDER)
        st.markdown(f'**{offset + rank + 1}. {_markdown(Path(match.uri).name)}**')
        st.caption(f'{time_range(match.start, match.end)} · {strength_text(match, best)}')
        if match.source != 'visual':
            said_ui(match, 160)
        st.button('Playing' if playing else 'Play', key=f'play-{rank}', icon=':material/play_arrow:', width='stretch',
                  disabled=playing, on_click=play, args=(rank,))
        st.button('More like this', key=f'similar-{rank}', icon=':material/image_search:', width='stretch',
                  on_click=_more_like, args=(match,), help='Moments that look like this keyframe')


def said_ui(match: SegmentDoc, limit: int) -> None:
    """The words a spoken result matched, the query's words (any ending) marked; inline HTML, so a mark
    followed by punctuation reads 'cake.' and not 'cake .'."""
    query = st.session_state.get('asked', {}).get('text', '')
    if 'screen' in (match.sources or [match.source]):
        st.badge('on screen', icon=':material/subtitles:', color='blue')
    marked = highlight(shorten(match.text or '', limit), query, html.escape, lambda word: f'<mark>{word}</mark>')
    st.html(f'<p class="vced-said" style="margin:0 0 .5rem">“{marked}”</p>')


def paging_ui(query: dict, shown: int) -> None:
    previous, _, following = st.columns([1, 4, 1])
    if query['offset']:
        previous.button('Previous', key='previous', icon=':material/chevron_left:', width='stretch',
                        on_click=ask, args=({**query, 'offset': max(query['offset'] - query['top'], 0)},))
    if shown == query['top']:
        following.button('More results', key='next', icon=':material/chevron_right:', width='stretch',
                         on_click=ask, args=({**query, 'offset': query['offset'] + query['top']},))


def ask(query: dict) -> None:
    """Search for `query` on this run (the search tab runs it)."""
    st.session_state.asked, st.session_state.pending = query, True


def _more_like(match: SegmentDoc) -> None:
    ask({'similar': (match.video_id, match.timestamp), 'top': st.session_state.asked['top'], 'by': 'segment',
         'offset': 0, 'label': f'{Path(match.uri).name} at {format_time(match.timestamp)}', 'note': ''})


def play(rank: int) -> None:
    """Play the `rank`-th result from its start (a new <video>, even where the same one was showing)."""
    st.session_state.playing = rank
    st.session_state.plays = st.session_state.get('plays', 0) + 1
