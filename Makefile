# alphad: `make run` starts the daemon on config.yaml, `make test` runs the tests.
# Both create .venv and install the project (editable, with the train, dev, alpaca, ib and study extras) when missing.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

.PHONY: run test bench bench-fused train-demo fuzz-control soak clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev,alpaca,ib,study]'
	@touch $@

run: $(STAMP)
	$(VENV)/bin/alphad run --config config.yaml

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/alphad bench --config config.yaml --topology five --wait block --rate 1000 --ticks 20000 --json bench-five.json
	$(VENV)/bin/alphad bench --config config.yaml --topology fused --wait block --rate 1000 --ticks 20000 --json bench-fused.json

# The hour-long soak at 10,000 events/s (BENCHMARKS.md; CI runs a 16 s one).
soak: $(STAMP)
	$(VENV)/bin/alphad soak --config config.yaml --duration 3600 --warmup 60 --rate 10000 --journal-cap-mb 1024 --json soak.json

# One million fuzzed frames at a real, Curve-locked control port (CI runs 5,000).
fuzz-control: $(STAMP)
	ALPHAD_FUZZ_FRAMES=1000000 $(PY) -m pytest -q -s tests/integration/test_control_lock.py -k fuzzed

train-demo: $(STAMP)
	$(VENV)/bin/alphad train-demo --config config.yaml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks var
	find . -name __pycache__ -prune -exec rm -rf {} +
