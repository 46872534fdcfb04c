# The two commands of the README: `make demo` and `make test`. Both set everything up from a fresh
# clone: a .venv in this folder, the project and its dependencies installed into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOUSEHOLDS ?= 20000
DATA   ?= data/city
STAMP  := $(VENV)/.installed

.PHONY: demo test install generate train serve lint fonts browser clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Chinese labels in plots need a CJK font; best effort, never fatal (plots still render without it).
fonts:
	@fc-list 2>/dev/null | grep -qi 'zenhei\|cjk' || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -q fonts-wqy-zenhei >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-wqy-zenhei >/dev/null 2>&1)) ; } || \
	  echo "note: no CJK font installed; Chinese plot labels may show as boxes"

# The browser tests of the auditor's pages drive Debian's Chromium at /usr/bin/chromium (never a
# downloaded browser); it needs the CJK font too. Best effort, never fatal: without it those tests
# skip, or fail where RELIEF_RISK_REQUIRE_BROWSER=1 (CI).
browser: fonts
	@[ -x /usr/bin/chromium ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) ; } || \
	  echo "note: no Chromium at /usr/bin/chromium; the browser tests will skip"

generate: $(STAMP)
	$(BIN)/relief-risk generate --households $(HOUSEHOLDS) --out $(DATA)

train: $(STAMP)
	$(BIN)/relief-risk train --data $(DATA) --risk all

# a person reads the demo's log in a terminal: plain text lines, unless RELIEF_RISK_LOG_FORMAT says
# otherwise (the service's own default is JSON lines, for a log collector)
LOG_FORMAT = RELIEF_RISK_LOG_FORMAT=$${RELIEF_RISK_LOG_FORMAT:-text}

serve: $(STAMP)
	$(LOG_FORMAT) $(BIN)/relief-risk serve --host 127.0.0.1 --port $(PORT) --demo-keys

demo: $(STAMP) fonts
	@echo "== 1/3 generate a synthetic city ($(HOUSEHOLDS) households, 36 months)"
	@time -p $(BIN)/relief-risk generate --households $(HOUSEHOLDS) --out $(DATA)
	@echo "== 2/3 train the five risks, evaluate each against today's rules, register them @champion"
	@time -p $(BIN)/relief-risk train --data $(DATA) --risk all
	@echo "== 3/3 serve on http://127.0.0.1:$(PORT)"
	$(LOG_FORMAT) $(BIN)/relief-risk serve --host 127.0.0.1 --port $(PORT) --demo-keys

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Side-by-side measurements on this machine (~10 minutes on 2 cores): benchmarks/results/latest.json
# and the README's benchmark table. BENCH_HOUSEHOLDS=50000 make bench for a quicker, smaller city.
BENCH_HOUSEHOLDS ?= 500000
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/bench.py --households $(BENCH_HOUSEHOLDS)

# ruff and import-linter come with the test extra (the stamp); the layers are [tool.importlinter].
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) data mlruns mlflow.db audit.db .demo_keys
