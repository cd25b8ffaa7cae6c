# The pipeline as file targets: make reruns only the stages whose inputs changed.
#
#   make pipeline [DAYS=30|DAYS=] [SOURCE=supabase|postgres|csv|synth] [CSV_DIR=dir]
#                 [ROWS=5000] [SEED=42] [DATA=data] [REPLACE=yes]
#   make extract | transform | validate | train | report | status | collect | predict
#   make models                                # every kept model version
#   make rollback MODEL=csat VERSION=v0003     # make a kept version champion again (or VERSION=3)
#   make train PROMOTE=always|never            # force or refuse promotion
#   make pipeline ALLOW_SMALL=yes              # train what has enough clean rows
#   make serve [BIND=127.0.0.1:8080]           # the champions over HTTP (SERVE_TOKEN)
#   TRANSFORM=/path/to/program make pipeline   # swap a stage (likewise EXTRACT,
#                                              # SYNTH, VALIDATE, TRAIN, REPORT, PREDICT)

DATA ?= data
DAYS ?= 30
ROWS ?= 5000
SEED ?= 42
CSV_DIR ?=
EVERY ?= 1h
RETRAIN_EVERY ?= 24h
RETRAIN_ROWS ?=
MAX_PARTS ?= 24
RETAIN_DAYS ?=
# The source: a database when one is configured, else synthetic data.
SOURCE ?= $(if $(SUPABASE_URL),supabase,$(if $(DATABASE_URL),postgres,synth))

CARGO ?= cargo
# One profile for the pipeline and the tests, so dependencies compile once.
PROFILE ?= release
BIN ?= $(or $(CARGO_TARGET_DIR),target)/$(PROFILE)

SYNTH ?= $(BIN)/synth
EXTRACT ?= $(BIN)/extract
TRANSFORM ?= $(BIN)/transform
VALIDATE ?= $(BIN)/validate
TRAIN ?= $(BIN)/train
PREDICT ?= $(BIN)/predict
MODELS ?= $(BIN)/models
REPORT ?= $(BIN)/report
STATUS ?= $(BIN)/status
SERVE ?= $(BIN)/serve
BIND ?= 127.0.0.1:8080

# make cannot name a file whose path has a space: refuse such a folder before
# anything is made under it.
ifeq ($(strip $(DATA)),)
$(error DATA is empty: name the data folder, e.g. DATA=data)
else ifneq ($(words $(DATA)),1)
$(error DATA="$(DATA)": make needs a folder path without spaces (a link to the folder works))
endif
ifneq ($(words $(CSV_DIR)),$(if $(CSV_DIR),1,0))
$(error CSV_DIR="$(CSV_DIR)": make needs a folder path without spaces (a link to the folder works))
endif

RAW_DONE := $(DATA)/reports/extract.json
TRAINING := $(DATA)/training/quality.parquet $(DATA)/training/csat.parquet $(DATA)/training/performance.parquet
VALIDATED := $(DATA)/reports/validation.json
TRAINED := $(DATA)/reports/training.json
REPORTED := $(DATA)/reports/report.html

# The window: the last DAYS days; DAYS= (empty) takes every row the source
# has (synth then spreads its rows over its default 30 days).
DAYS_FLAG = $(if $(DAYS),--days $(DAYS))
# A full extraction (or synth) over raw tables `make collect` has been
# collecting into is refused unless REPLACE=yes: it would drop what was collected.
REPLACE_FLAG = $(if $(filter yes,$(REPLACE)),--replace)

# Extraction settings; a change of any of them makes the raw data stale.
PARAMS := source=$(SOURCE) days=$(DAYS) rows=$(ROWS) seed=$(SEED) csv=$(CSV_DIR)
PARAMS_FILE := $(DATA)/.make/extract.params
# Rewritten only when a setting changed, so what depends on it reruns then and
# only then; and only by the targets that extract, so `make serve DATA=dta`
# (a typo) makes no folder: serve, status and predict say it is not there.
$(PARAMS_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(PARAMS)' | cmp -s - $@ || echo '$(PARAMS)' > $@

# A database is read afresh on every run; synth and CSV only when stale.
ifneq ($(filter supabase postgres,$(SOURCE)),)
EXTRACT_DEPS := FORCE
else ifeq ($(SOURCE),csv)
EXTRACT_DEPS := $(PARAMS_FILE) $(wildcard $(EXTRACT)) $(wildcard $(CSV_DIR)/*.csv)
else
EXTRACT_DEPS := $(PARAMS_FILE) $(wildcard $(SYNTH))
endif

.PHONY: pipeline stages build extract transform validate train report status collect retrain predict models rollback serve clean-data FORCE

## pipeline: build the binaries, then extract (or synth), transform, validate, train, report
pipeline: build
	@$(MAKE) --no-print-directory stages

stages: $(REPORTED)
	@echo "pipeline: done; models in $(DATA)/models, insights in $(DATA)/insights"
	@echo "pipeline: report: $(abspath $(REPORTED))"

## build: the stage binaries, in the profile the tests use
build:
	@CARGO="$(CARGO)" tools/build-prereqs.sh $(BIN)
	$(CARGO) build --$(PROFILE) --workspace --bins

$(RAW_DONE): $(EXTRACT_DEPS)
ifeq ($(SOURCE),synth)
	@echo "==================================================================" >&2
	@echo " No database configured (SUPABASE_URL and DATABASE_URL are unset):" >&2
	@echo " using SYNTHETIC data, tagged _source = synth." >&2
	@echo " For real data: SOURCE=supabase|postgres, or SOURCE=csv CSV_DIR=dir" >&2
	@echo "==================================================================" >&2
	$(SYNTH) --data $(DATA) --rows $(ROWS) --seed $(SEED) $(DAYS_FLAG) $(REPLACE_FLAG)
else ifeq ($(SOURCE),csv)
	@test -n "$(CSV_DIR)" || { echo "pipeline: SOURCE=csv needs CSV_DIR=<folder with the exported <table>.csv files>" >&2; exit 2; }
	$(EXTRACT) --data $(DATA) --source csv --input $(CSV_DIR) $(DAYS_FLAG) $(REPLACE_FLAG)
else ifneq ($(filter supabase postgres,$(SOURCE)),)
	$(EXTRACT) --data $(DATA) --source $(SOURCE) $(DAYS_FLAG) $(REPLACE_FLAG)
else
	@echo "pipeline: unknown SOURCE=$(SOURCE) (use supabase, postgres, csv or synth)" >&2; exit 2
endif

$(TRAINING) &: $(RAW_DONE) $(wildcard $(TRANSFORM))
	$(TRANSFORM) --data $(DATA)

# validate writes its outputs, then exits 3, when a dataset has too few clean
# rows (ALLOW_SMALL=yes goes on). Its report is then newer than its inputs, so
# a mark, newer still, makes the next make run it again rather than go on to
# train as if it had passed.
VALIDATE_FLAGS = --data $(DATA) $(if $(filter yes,$(ALLOW_SMALL)),--allow-small)
VALIDATE_AGAIN := $(DATA)/.make/validate.again
RUN_VALIDATE = @rm -f $(VALIDATE_AGAIN); echo "$(VALIDATE) $(VALIDATE_FLAGS)"; \
	$(VALIDATE) $(VALIDATE_FLAGS) || { status=$$?; mkdir -p $(dir $(VALIDATE_AGAIN)); touch $(VALIDATE_AGAIN); exit $$status; }

$(VALIDATED): $(TRAINING) $(wildcard $(VALIDATE)) $(wildcard $(VALIDATE_AGAIN))
	$(RUN_VALIDATE)

# --promote better|always|never (default better: the gate decides).
TRAIN_FLAGS = --data $(DATA) --seed $(SEED) $(if $(PROMOTE),--promote $(PROMOTE))

$(TRAINED): $(VALIDATED) $(wildcard $(TRAIN))
	$(TRAIN) $(TRAIN_FLAGS)

# Train rewrites training.json on every run, and validate the clean files and
# validation.json, so these stand for every input of the report.
$(REPORTED): $(TRAINED) $(VALIDATED) $(RAW_DONE) $(wildcard $(REPORT))
	$(REPORT) --data $(DATA)

## extract / transform / validate / train: run one stage now, whatever make thinks is stale
extract: build $(PARAMS_FILE)
ifeq ($(SOURCE),synth)
	$(SYNTH) --data $(DATA) --rows $(ROWS) --seed $(SEED) $(DAYS_FLAG) $(REPLACE_FLAG)
else ifeq ($(SOURCE),csv)
	@test -n "$(CSV_DIR)" || { echo "extract: SOURCE=csv needs CSV_DIR=<folder with the exported <table>.csv files>" >&2; exit 2; }
	$(EXTRACT) --data $(DATA) --source csv --input $(CSV_DIR) $(DAYS_FLAG) $(REPLACE_FLAG)
else
	$(EXTRACT) --data $(DATA) --source $(SOURCE) $(DAYS_FLAG) $(REPLACE_FLAG)
endif

transform: build
	$(TRANSFORM) --data $(DATA)

validate: build
	$(RUN_VALIDATE)

train: build
	$(TRAIN) $(TRAIN_FLAGS)

## models: every kept version of each model, its metrics, and the champions
models: build
	@$(MODELS) --data $(DATA) list

## rollback: MODEL=quality|csat|performance VERSION=v0003 makes a kept version champion again
rollback: build
	@test -n "$(MODEL)" -a -n "$(VERSION)" || { echo "rollback: give MODEL=quality|csat|performance VERSION=vNNNN (see make models)" >&2; exit 2; }
	$(MODELS) --data $(DATA) promote --model $(MODEL) --version $(VERSION)

## report: CSAT insights and reports/report.html from what the stages left
report: build
	$(REPORT) --data $(DATA)

## status: what data and models there are, and how fresh
status: build
	@$(STATUS) --data $(DATA)

## collect: incremental extraction every EVERY (default 1h) until Ctrl-C, retraining
## (make retrain) when the last training is older than RETRAIN_EVERY (default 24h) or
## RETRAIN_ROWS new rows came in; parts compacted past MAX_PARTS, RETAIN_DAYS kept
collect: build $(PARAMS_FILE)
	@test "$(SOURCE)" != synth || { echo "collect: no database configured; set SUPABASE_URL or DATABASE_URL (or SOURCE=csv CSV_DIR=dir)" >&2; exit 2; }
	$(EXTRACT) --data $(DATA) --source $(SOURCE) $(if $(filter csv,$(SOURCE)),--input $(CSV_DIR)) \
	    --incremental --every $(EVERY) --retrain-every $(RETRAIN_EVERY) \
	    $(if $(RETRAIN_ROWS),--retrain-rows $(RETRAIN_ROWS)) --max-parts $(MAX_PARTS) \
	    $(if $(RETAIN_DAYS),--retain-days $(RETAIN_DAYS)) \
	    --retrain-command '$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) retrain DATA=$(DATA) SEED=$(SEED) $(if $(PROMOTE),PROMOTE=$(PROMOTE)) $(if $(ALLOW_SMALL),ALLOW_SMALL=$(ALLOW_SMALL))'

## retrain: transform, validate, train (gated) and report on the raw data there is, now
retrain: build
	$(TRANSFORM) --data $(DATA)
	$(RUN_VALIDATE)
	$(TRAIN) $(TRAIN_FLAGS)
	$(REPORT) --data $(DATA)

## serve: the champions and insights over HTTP on BIND (default 127.0.0.1:8080) until
## Ctrl-C, following promotions; beyond loopback it needs SERVE_TOKEN in the environment
serve: build
	$(SERVE) --data $(DATA) --bind $(BIND)

## predict: MODEL=quality INPUT=rows.parquet OUTPUT=out.parquet [REJECTED=set-aside.csv]
predict: build
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "predict: give MODEL=quality|csat|performance INPUT=file OUTPUT=file" >&2; exit 2; }
	$(PREDICT) --model $(DATA)/models/$(or $(MODEL),quality) --input $(INPUT) --output $(OUTPUT)$(if $(REJECTED), --rejected $(REJECTED))

## clean-data: remove everything under DATA (raw, training, clean, models, reports);
## with model versions, or data collected from a database or CSV files, only with CONFIRM=yes
clean-data:
	@if [ "$(CONFIRM)" != yes ] && { [ -d $(DATA)/models/versions ] || \
	    grep -Eqs '"source": *"(supabase|postgres|csv)"' $(DATA)/reports/extract.json; }; then \
	  echo "clean-data: $(DATA) holds model versions (the champions serve answers from) or data collected from a source, which a rerun may not make again; make clean-data CONFIRM=yes removes them" >&2; \
	  exit 2; \
	fi
	rm -rf $(DATA)/raw $(DATA)/training $(DATA)/clean $(DATA)/rejected $(DATA)/models \
	       $(DATA)/insights $(DATA)/reports $(DATA)/state $(DATA)/.make \
	       $(DATA)/.staging $(DATA)/.commit.json $(DATA)/.lock $(DATA)/.gen $(DATA)/.current

FORCE:
