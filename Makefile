# Two set-up commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-apache-kafka lint bench sample clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xsell-stream demo

test: $(STAMP)
	$(BIN)/ruff check xsell_stream connectors tests
	$(BIN)/pytest

# The broker-backed tests again, unchanged, on a real Apache Kafka 4 (KRaft, single node) that
# the test session starts from Maven Central jars (needs mvn and a JDK 17+; tests/apache_kafka.py).
test-apache-kafka: $(STAMP)
	XSELL_TEST_KAFKA=apache $(BIN)/pytest -k "not demo" tests/faults tests/test_bad_input.py \
		tests/test_compliance.py tests/test_receiver.py tests/test_end_to_end.py \
		tests/test_consumer_lag.py

bench: $(STAMP)
	$(BIN)/python -m tests.bench_replay

lint: $(STAMP)
	$(BIN)/ruff check xsell_stream connectors tests

# Rebuilds the committed demo sample from the shared recordings.
sample: $(STAMP)
	$(BIN)/python -c "from pathlib import Path; from xsell_stream.demo import build_sample, SAMPLE; \
	d = Path('../shared/data/online-retail'); \
	print(build_sample([d/'shopify-northwind.jsonl.gz', d/'woocommerce-continental.jsonl.gz'], Path('xsell_stream/demo')/SAMPLE), 'deliveries')"

clean:
	rm -rf $(VENV) .xsell-demo .pytest_cache

# Dashboard, rules and deployment (grafana/, deploy/). The deploy tests install the Debian tools
# themselves (deploy/install-tools.sh); these targets are for working on them by hand.
.PHONY: deploy-tools dashboard promtool-test
deploy-tools:
	bash deploy/install-tools.sh

# Regenerates grafana/dashboards/xsell-stream.json from grafana/generate.py.
dashboard: $(STAMP)
	$(BIN)/python grafana/generate.py

promtool-test: deploy-tools
	cd deploy/prometheus/tests && promtool test rules *_test.yml
