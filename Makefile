# One entry point for people and CI. Every target installs what it needs into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= proxy
# Where torch comes from: empty, PyPI's default build (with the CUDA libraries); on a machine
# without a GPU, PyTorch's CPU-only wheels: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# runs at once in python -m study reproduce and compare (proxy: one per CPU core; a GPU profile: one)
WORKERS_proxy := 2
WORKERS ?= $(or $(WORKERS_$(PROFILE)),1)
SEEDS ?= 0 1 2
LAB := $(BIN)/python -m experiments
STUDY := $(BIN)/python -m study
OUT := results/$(PROFILE)
NOTEBOOKS := 01_data 02_train_seam 03_cams 04_ablations 05_sota_table
TABLES := 04_ablations 05_sota_table

.PHONY: install hooks test lint reproduce lab tables data pretrain pipeline notebooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/pip install --quiet --index-url $(TORCH_INDEX) \
	  'torch>=2.2,<=2.14.1' 'torchvision>=0.17,<=0.29.1'; fi
	$(BIN)/pip install --quiet -e '.[dev,crf]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	$(MAKE) --no-print-directory hooks
	touch $(STAMP)

install: $(STAMP)

# A git filter (tools/notebook_filter.py) that strips what JupyterLab saves into
# notebooks/*.ipynb when git reads them: running a notebook leaves git status clean. The
# executed copies in results/ keep their outputs.
hooks:
	if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.nbstripout.clean "'$(abspath $(BIN))/python' tools/notebook_filter.py"; \
	  git config filter.nbstripout.smudge cat; \
	  git config filter.nbstripout.required true; \
	  attributes=$$(git rev-parse --git-path info/attributes); mkdir -p $$(dirname $$attributes); \
	  grep -qxF 'notebooks/*.ipynb filter=nbstripout' $$attributes 2>/dev/null || \
	    echo 'notebooks/*.ipynb filter=nbstripout' >> $$attributes; \
	fi

# Notebooks as they will be committed: where make install set up the filter, git cleans them
# itself; elsewhere each must already be clean (the message says the one command that does it).
lint: $(STAMP)
	$(BIN)/ruff check .
	@if git check-attr filter notebooks/01_data.ipynb 2>/dev/null | grep -q ': nbstripout$$' \
	    && git config filter.nbstripout.clean >/dev/null; then \
	  echo "notebooks/*.ipynb: cleaned by the git filter (tools/notebook_filter.py) on commit"; \
	else for nb in notebooks/*.ipynb; do \
	  $(BIN)/python tools/notebook_filter.py < $$nb | cmp -s - $$nb || { \
	    echo "$$nb: holds outputs or counts outside the checked cells; fix with" \
	    "'$(BIN)/python tools/notebook_filter.py < $$nb > $$nb.clean && mv $$nb.clean $$nb'" \
	    "(make install sets up a git filter that does it on every commit)"; exit 1; }; \
	done; fi

test: lint
	$(BIN)/pytest --nbval-lax -p no:cacheprovider

data: $(STAMP)
	$(BIN)/seam data --profile $(PROFILE)

# Retrain the committed proxy trunk (about 40 min on one CPU thread); pin the printed sha256.
pretrain: $(STAMP)
	$(BIN)/python -m experiments pretrain --profile $(PROFILE) --force --out results/$(PROFILE)

# The main job: data for the profile, the pretrained trunk's checksum checked (profiles that
# pretrain), every run behind the tables of notebooks 04 and 05 (python -m study reproduce: what remains,
# its estimated time, WORKERS runs at once; resumable, and a run recorded under
# results/<profile>/runs/ is never run again), then every notebook executed into
# results/<profile>/ (02 and 03 reuse the seed-0 runs' weights, or train them where runs/ is
# gone) and results/<profile>/summary.md. Each step's wall time is printed.
reproduce: data
	if [ "$(PROFILE)" = proxy ]; then $(LAB) pretrain --profile $(PROFILE) --verify; fi
	$(STUDY) reproduce --profile $(PROFILE) --workers $(WORKERS)
	for nb in $(NOTEBOOKS); do \
	  start=$$(date +%s); \
	  $(STUDY) notebook $$nb --profile $(PROFILE) || exit 1; \
	  echo "$$nb: $$(( ($$(date +%s) - start) / 60 )) min"; \
	done
	$(STUDY) summary --profile $(PROFILE)

# Lab reports over the same runs (they need the run folders: on a fresh clone they retrain the
# seed-0 baseline): SEAM vs baseline per class, the benchmark's difficulty, its datasheet.
lab: data
	$(LAB) compare --profile $(PROFILE) --seeds $(SEEDS) --workers $(WORKERS) --out $(OUT)
	$(LAB) difficulty --profile $(PROFILE) --out $(OUT)
	$(LAB) datasheet --profile $(PROFILE) --out $(OUT)

# The whole pipeline (CAMs ... retrained segmentation) for SEAM and the baseline of seed 0,
# continuing the comparison's runs (one run layout: runs/<profile>/<variant>/seed<k>);
# WORKERS > 1 runs the two at once, one torch thread each. Their table:
# results/<profile>/pipeline.{json,md}.
RUNS := runs/$(PROFILE)
pipeline: $(STAMP)
	set -e; \
	seam_run="$(BIN)/seam run --profile $(PROFILE) --variant seam --seed 0"; \
	base_run="$(BIN)/seam run --profile $(PROFILE) --variant baseline --seed 0"; \
	if [ "$(WORKERS)" -gt 1 ]; then \
	  OMP_NUM_THREADS=1 $$seam_run & pid=$$!; OMP_NUM_THREADS=1 $$base_run; wait $$pid; \
	else $$seam_run; $$base_run; fi; \
	$(LAB) pipeline-report seam=$(RUNS)/seam/seed0 baseline=$(RUNS)/baseline/seed0 \
	  --out results/$(PROFILE)/pipeline \
	  --setup "make pipeline PROFILE=$(PROFILE) WORKERS=$(WORKERS) (WORKERS > 1: both at once, one torch thread each)"

# Every table of notebooks 04 and 05 re-rendered from the runs recorded under
# results/<profile>/runs/ (committed), without training anything.
tables: $(STAMP)
	for nb in $(TABLES); do \
	  $(STUDY) notebook $$nb --profile $(PROFILE) --no-train || exit 1; \
	done
	$(STUDY) summary --profile $(PROFILE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
