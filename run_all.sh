#!/usr/bin/env bash
# The main job: the whole study on the embedded demo data (CPU, minutes).
#   ./run_all.sh            demo: data -> curation -> sweep -> FID -> survey -> summary
#   ./run_all.sh --help     all options (the real study: --study ...)
# Idempotent: a second run reuses what is done. Sets up .venv on first use.
set -euo pipefail
cd "$(dirname "$0")"
source lib/setup_env.sh

OUT=results/demo
mkdir -p "$OUT"
t0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

# --- 1. data: the embedded demo set (issue 3) -------------------------------------------------
# --- 2. curation: notebook 01 (issue 3) --------------------------------------------------------
# --- 3. sweep: notebook 02 once per params YAML (issue 4) ---------------------------------------
# --- 4. evaluation: notebook 03 (issue 5) -------------------------------------------------------
step "4. evaluation: notebook 03 -> $OUT/03_fid_evaluation.ipynb (FID/KID when the Inception weights are there, paired metrics, results table; reuses scored checkpoints)"
papermill -k maskcycle --log-level WARNING notebooks/03_fid_evaluation.ipynb "$OUT/03_fid_evaluation.ipynb" \
  -p sweep_dir "$OUT/sweep" -p curated_dir "$OUT/curated"
# --- 5. survey: quiz + notebook 04 (issue 6) ----------------------------------------------------
step "5. survey: quiz from the sweep's best trial -> $OUT/survey; answers SIMULATED (100 people); notebook 04"
# The demo's answers are simulated (files simulated_*.csv) and remade each run, so --force may replace
# an earlier quiz; with real participants never force over a key that answers were collected with.
maskcycle survey build --sweep "$OUT/sweep" --curated "$OUT/curated" --out "$OUT/survey" --seed 0 --force
maskcycle survey simulate --survey "$OUT/survey" --out "$OUT/survey/responses_simulated" --participants 100 \
  --dprime 0.5 --criterion 0.2 --seed 0
papermill -k maskcycle --log-level WARNING notebooks/04_survey_analysis.ipynb "$OUT/04_survey_analysis.ipynb" \
  -p survey_dir "$OUT/survey" -p responses_dir "$OUT/survey/responses_simulated" \
  -p summary_out "$OUT/survey/analysis_simulated.json"
# --- 6. summary ---------------------------------------------------------------------------------

step "done in $(( $(date +%s) - t0 ))s; outputs under $OUT/"
