# One entry point for people and CI. Every target installs what it needs into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= proxy
# seam compare: runs trained at once (proxy: one per CPU core; a GPU profile: one)
WORKERS_proxy := 2
WORKERS ?= $(or $(WORKERS_$(PROFILE)),1)
SEEDS ?= 0 1 2
NOTEBOOKS := 01_data 02_train_seam 03_cams

.PHONY: install test lint reproduce data pretrain notebooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,crf]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/nbstripout --keep-count --verify notebooks/*.ipynb

test: lint
	$(BIN)/pytest --nbval-lax -p no:cacheprovider

data: $(STAMP)
	$(BIN)/seam data --profile $(PROFILE)

# Retrain the committed proxy trunk (about 40 min on one CPU thread); pin the printed sha256.
pretrain: $(STAMP)
	$(BIN)/seam pretrain --profile $(PROFILE) --force

# The main job: data for the profile, the pretrained trunk's checksum checked (profiles that
# pretrain), SEAM vs baseline over the seeds, the baseline's difficulty (the seed-0 baseline
# run, reused), then every notebook executed into results/<profile>/ (they reuse the runs).
reproduce: data
	if [ "$(PROFILE)" = proxy ]; then $(BIN)/seam pretrain --profile $(PROFILE) --verify; fi
	$(BIN)/seam compare --profile $(PROFILE) --seeds $(SEEDS) --workers $(WORKERS)
	$(BIN)/seam difficulty --profile $(PROFILE)
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/seam notebook $$nb --profile $(PROFILE) || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
