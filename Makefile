# make demo: install everything and open the search page.  make test: install everything and run every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-shared password test bench bench-quick chromium ffmpeg espeak-ng fonts

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools<81' wheel
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

MEDIA_PORT ?= 8502

demo: $(VENV)/.installed
	$(BIN)/streamlit run serve.py --server.headless true --browser.gatherUsageStats false

# The page for other machines: every address, behind the password in .streamlit/secrets.toml (make password).
demo-shared: $(VENV)/.installed
	@grep -qs '^password_hash' .streamlit/secrets.toml || { echo 'set a password first: make password'; exit 1; }
	$(BIN)/streamlit run serve.py --server.headless true --browser.gatherUsageStats false --server.address 0.0.0.0 -- --media-port $(MEDIA_PORT)

password: $(VENV)/.installed
	@mkdir -p .streamlit && $(BIN)/python -m page.access >> .streamlit/secrets.toml

test: $(VENV)/.installed chromium ffmpeg espeak-ng fonts
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python -m bench

bench-quick: $(VENV)/.installed
	$(BIN)/python -m bench --quick

# Debian's Chromium for the real-browser test (Playwright drives it; it never downloads a browser).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's ffmpeg (5.1 on Debian 12): the loader's tests run against it and against imageio-ffmpeg's (tests/ffmpegs.py).
ffmpeg:
	@test -x /usr/bin/ffmpeg || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }

# Debian's fonts draw the English and Chinese lines the on-screen text tests read (ffmpeg drawtext).
fonts:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf -a -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core fonts-noto-cjk >/dev/null; }

# Debian's espeak-ng speaks the sentences the speech tests recognise.
espeak-ng:
	@command -v espeak-ng >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }
