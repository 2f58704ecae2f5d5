# Two commands on a fresh machine: `make demo` (offline CPU demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEDRO_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

DEMO_VIDEOS := data/01_raw/videos
DEMO_OUTPUT := data/07_model_output

.PHONY: setup demo test lint viz mlflow clean-demo fiftyone-env

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/action100m demo-footage --out $(DEMO_VIDEOS)
	$(BIN)/action100m tiny-models --out data/06_models
	$(BIN)/kedro run --env demo --params "videos_dir=$(DEMO_VIDEOS),output_dir=$(DEMO_OUTPUT)"
	$(BIN)/action100m validate --strict $(DEMO_OUTPUT)/data
	$(BIN)/action100m stats $(DEMO_OUTPUT)/data
	@echo
	@echo "Release shards  : $(DEMO_OUTPUT)/data/*.parquet (datasets.load_dataset(\"$(DEMO_OUTPUT)\"), card: README.md)"
	@echo "Per-video trees : $(DEMO_OUTPUT)/trees/"
	@echo "Errors table    : $(DEMO_OUTPUT)/errors.jsonl"
	@echo "Run index       : $(DEMO_OUTPUT)/index.html (every video and failure)"
	@echo "Viewers         : $(DEMO_OUTPUT)/viewer/<video_uid>.html, timelines/<video_uid>.png"
	@echo "FiftyOne export : $(DEMO_OUTPUT)/fiftyone/ (fo.types.FiftyOneDataset), card: README.md"
	@echo "Run summary     : $(DEMO_OUTPUT)/run_summary.json"
	@echo "Run settings    : $(DEMO_OUTPUT)/run_config.json (every parameter, models, versions)"
	@echo "MLflow runs     : mlflow.db   (make mlflow, http://127.0.0.1:5000)"
	@echo "Pipeline graph  : make viz    (http://127.0.0.1:4141)"

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean-demo:
	rm -rf $(DEMO_OUTPUT)/* mlflow.db

viz: setup
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141

mlflow: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

# An isolated FiftyOne in .fiftyone/ (optional: to load the export, and for its test)
fiftyone-env:
	scripts/fiftyone-env.sh .fiftyone
