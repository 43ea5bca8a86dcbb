"""The page in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run serve.py`."""
import json
import re
import threading
import time
from pathlib import Path

from tests.browser.helpers import ARTIFACTS, add_videos, cli, first_frame_png, open_tab, rss_mb, search, wait_playing
from tests.factories import make_video

CARD = re.compile(r'^\d\d:\d\d–\d\d:\d\d · [▰▱]{5} ')
BIG_VIDEO_MB = 200


def test_upload_search_play_delete_in_a_browser(server, browser, sample_videos, flow_args, tmp_path):
    from playwright.sync_api import expect

    url = server.url
    page = open_tab(browser, url)
    media = []
    page.on('response', lambda r: media.append((r.status, r.request.headers.get('range'))) if '/media/' in r.url else None)
    expect(page.get_by_text('Nothing is indexed yet')).to_be_visible()

    add_videos(page, sample_videos)
    expect(page.get_by_text('3 indexed, 0 already indexed, 0 failed')).to_be_visible(timeout=240_000)  # models load meanwhile
    page.screenshot(path=ARTIFACTS / 'add.png')

    # the best result plays at once, muted, from the start of its segment, streamed by range requests
    search(page, 'colour bars on a test card')
    expect(page.get_by_text(CARD).first).to_be_visible()
    expect(page.locator('video')).to_have_count(1)
    state = wait_playing(page)
    page.set_viewport_size({'width': 1280, 'height': 1480})
    page.wait_for_timeout(300)
    page.screenshot(path=ARTIFACTS / 'screenshot.png')  # docs/screenshot.png
    assert state['muted'] and re.match(r'http://127\.0\.0\.1:\d+/media/[\w-]{32}/\w+\.mp4#t=', state['src'])
    assert any(status == 206 for status, _ in media)

    # by image: a frame of the fractal video finds that video first; the player switches to it and plays
    page.get_by_text('Search by image instead').click()
    by_image = page.get_by_test_id('stExpander').filter(has_text='Search by image instead')  # not the one by video
    by_image.locator('input[type="file"]').set_input_files(str(first_frame_png(sample_videos[2], tmp_path)))
    page.get_by_role('button', name='Search').click()
    expect(page.get_by_text(re.compile('results? \\(1–\\d+\\) for “frame.png”'))).to_be_visible()
    expect(page.get_by_role('heading', name='fractal.mp4')).to_be_visible()
    assert 'fractal.mp4' in wait_playing(page)['src']
    page.screenshot(path=ARTIFACTS / 'search.png', full_page=True)

    with page.expect_download() as download:
        page.get_by_role('button', name='Download this segment').click()
    assert download.value.suggested_filename == 'fractal 00.00–00.02.mp4'
    assert Path(download.value.path()).read_bytes()[4:8] == b'ftyp'  # an MP4, cut when asked for

    # More like this, and the next page of results
    page.get_by_role('button', name='More like this').first.click()
    expect(page.get_by_text(re.compile(r'for “fractal\.mp4 at 00:0\d”'))).to_be_visible()

    # a second tab: uploading a file already indexed is told at once
    other = open_tab(browser, url)
    add_videos(other, sample_videos[:1])
    expect(other.get_by_text('0 indexed, 1 already indexed, 0 failed')).to_be_visible(timeout=30_000)

    # deleting in the second tab: one confirmation, for that video only; the first tab drops it by itself
    other.get_by_role('tab', name='Library').click()
    library = other.get_by_role('tabpanel', name='Library')
    expect(library.get_by_text('fractal.mp4')).to_be_visible()
    other.screenshot(path=ARTIFACTS / 'library.png')
    library.locator('[data-testid="stHorizontalBlock"]', has_text='fractal.mp4').get_by_role('button', name='Delete').click()
    library.get_by_role('button', name='Yes, delete').click()
    expect(library.get_by_role('button', name='Delete')).to_have_count(2)
    expect(library.get_by_role('button', name='Yes, delete')).to_have_count(0)  # nothing left open for the next one
    expect(page.get_by_role('heading', name='fractal.mp4')).to_have_count(0, timeout=15_000)
    expect(page.get_by_text('2 videos · ')).to_be_visible()

    # the CLI works on the same workspace while the page runs, and the page sees what it did
    listed = cli(flow_args[:4], 'list', '--json')
    assert listed.returncode == 0, listed.stderr
    assert sorted(Path(v['video']).name for v in json.loads(listed.stdout)) == ['bars.mp4', 'pattern.mp4']
    found = cli(flow_args, 'search', 'colour bars')
    assert found.returncode == 0 and 'rebuil' not in found.stderr.lower(), found.stderr
    deleted = cli(flow_args[:4], 'delete', str(tmp_path / 'uploads' / 'pattern.mp4'))
    assert deleted.returncode == 0, deleted.stderr
    expect(page.get_by_text('1 video · ')).to_be_visible(timeout=15_000)


def test_a_200_mb_video_plays_with_flat_server_memory(server, browser, flow_args, tmp_path):
    """The media server sends the parts the browser asks for: memory stays flat while a 200 MB file plays."""
    from playwright.sync_api import expect

    big = make_video(tmp_path / 'big.mp4', duration=17, size='1280x720', source='testsrc2',
                     codec_args=('-vf', 'noise=alls=60:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast',
                                 '-b:v', f'{BIG_VIDEO_MB // 2}M', '-minrate', f'{BIG_VIDEO_MB // 2}M',
                                 '-maxrate', f'{BIG_VIDEO_MB // 2}M', '-bufsize', '20M'))
    size_mb = big.stat().st_size / 2 ** 20
    indexed = cli(flow_args, 'index', str(big))
    assert indexed.returncode == 0, indexed.stderr

    url, process = server.url, server.process
    page = open_tab(browser, url)
    ranges = []
    page.on('request', lambda r: ranges.append(r.headers.get('range')) if '/media/' in r.url else None)
    search(page, 'a test pattern')
    expect(page.get_by_text(CARD).first).to_be_visible()
    wait_playing(page, timeout=180_000)  # software decoding of 100 Mbit/s 720p starts slowly on a busy 2-core machine
    before = rss_mb(process.pid)
    samples, stop = [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:  # play it all fast, then seek about: the browser fetches the whole file in ranges
        page.evaluate('v => { v.playbackRate = 16; v.play(); }', page.locator('video').element_handle())
        page.wait_for_function('(v => v && (v.ended || v.currentTime > 15))(document.querySelector("video"))', timeout=120_000)
        for position in (2, 12, 6, 15):
            page.evaluate(f'v => {{ v.playbackRate = 1; v.currentTime = {position}; v.play(); }}',
                          page.locator('video').element_handle())
            page.wait_for_function(f'(v => v && v.readyState >= 3 && Math.abs(v.currentTime - {position}) < 2)'
                                   '(document.querySelector("video"))')
    finally:
        stop.set()
        sampler.join()
    peak = max(samples)
    report = {'file_mb': round(size_mb), 'rss_before_mb': round(before), 'rss_peak_mb': round(peak),
              'rss_after_mb': round(rss_mb(process.pid)), 'range_requests': len(ranges), 'ranges': ranges[:8]}
    (ARTIFACTS / 'playback_memory.json').write_text(json.dumps(report, indent=1))
    print(report)
    assert size_mb > BIG_VIDEO_MB * 0.9 and len(ranges) > 2
    assert peak - before < 40, report  # streamed in 256 KB pieces, never held whole


def test_the_player_keeps_playing_through_runs_that_change_the_page_above_it(server, browser, sample_videos, flow_args):
    """A video deleted elsewhere redraws the results with a line above the player: the same <video> plays on
    (it used to be replaced, starting the segment over); a new search starts afresh."""
    from playwright.sync_api import expect

    assert cli(flow_args, 'index', *map(str, sample_videos)).returncode == 0
    page = open_tab(browser, server.url)
    search(page, 'colour bars')
    expect(page.get_by_text(CARD).first).to_be_visible()
    playing = Path(wait_playing(page)['src'].split('#')[0]).name
    page.evaluate('document.querySelector("video").dataset.seen = "before"')
    other = next(v for v in sample_videos if v.name != playing)
    deleted = cli(flow_args[:4], 'delete', str(other))
    assert deleted.returncode == 0, deleted.stderr
    expect(page.get_by_text('1 result left out: deleted from the library.')).to_be_visible(timeout=15_000)
    assert page.evaluate('document.querySelector("video").dataset.seen') == 'before'
    assert playing in page.evaluate('document.querySelector("video").currentSrc')

    search(page, 'colour bars')  # the same best result: played again from its start, in a new element
    page.wait_for_function('(video => video && !video.dataset.seen)(document.querySelector("video"))')
    wait_playing(page)
