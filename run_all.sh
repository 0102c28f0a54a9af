#!/usr/bin/env bash
# The main job: the whole study on the embedded demo data (CPU, minutes).
#   ./run_all.sh            demo: data -> curation -> sweep -> FID -> survey -> summary
#   ./run_all.sh --help     all options (the real study: --study ...)
# Idempotent: a second run reuses what is done. Sets up .venv on first use.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  cat <<'EOF'
Usage: ./run_all.sh                                              the demo (CPU, minutes) -> results/demo
       ./run_all.sh --study --ffhq DIR --maskedfacenet DIR       the real study          -> results/study
       ./run_all.sh --study --curated DIR                        the study from a curated trainA/trainB/testA/testB

Steps: environment (.venv, first run only) -> data -> curation (notebook 01) -> sweep of params/demo
or params/study (notebook 02 per trial) -> FID evaluation (notebook 03) -> survey (notebook 04) ->
summary table. Idempotent: rerunning skips finished trials and resumes interrupted ones.

  --study               run params/study/*.yaml (256 px, 200 epochs; one trial per visible GPU)
  --ffhq DIR            FFHQ root (images1024x1024/ or thumbnails128x128/ inside)
  --maskedfacenet DIR   MaskedFace-Net root (CMFD/ and/or IMFD/ inside)
  --curated DIR         an already-curated folder instead of --ffhq/--maskedfacenet
  -h, --help            this text
Environment: SWEEP_ARGS adds options to `maskcycle sweep` (e.g. SWEEP_ARGS="--executor slurm").
EOF
}
MODE=demo FFHQ_DIR="" MFN_DIR="" CURATED_IN=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --study) MODE=study ;;
    --ffhq|--maskedfacenet|--curated)
      [ $# -ge 2 ] || { echo "run_all.sh: $1 needs a folder" >&2; exit 2; }
      [ -d "$2" ] || { echo "run_all.sh: $1 $2: no such folder" >&2; exit 2; }
      case "$1" in --ffhq) FFHQ_DIR="$2" ;; --maskedfacenet) MFN_DIR="$2" ;; --curated) CURATED_IN="$2" ;; esac
      shift ;;
    *) echo "run_all.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$MODE" = study ]; then
  if [ -n "$CURATED_IN" ] && [ -z "$FFHQ_DIR$MFN_DIR" ]; then :
  elif [ -z "$CURATED_IN" ] && [ -n "$FFHQ_DIR" ] && [ -n "$MFN_DIR" ]; then :
  else echo "run_all.sh: --study needs --ffhq DIR --maskedfacenet DIR, or --curated DIR" >&2; exit 2; fi
elif [ -n "$FFHQ_DIR$MFN_DIR$CURATED_IN" ]; then
  echo "run_all.sh: --ffhq/--maskedfacenet/--curated go with --study" >&2; exit 2
fi
OUT=results/$MODE        # results/demo or results/study
PARAMS=params/$MODE      # the trial YAMLs of the sweep
DATAROOT="$OUT/curated"  # what curation (step 2) writes and the trials read

source lib/setup_env.sh
mkdir -p "$OUT"
t0=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

# --- 1. data: the embedded demo set ----------
if [ "$MODE" = demo ]; then
  step "1. demo data: $OUT/raw (600 face ids, 128 px; kept when already complete)"
  maskcycle demo-data --out "$OUT/raw" --n-ids 600 --size 128 --seed 0
  CURATION=(-p ffhq_root "$OUT/raw/ffhq" -p maskedfacenet_root "$OUT/raw/maskedfacenet"
            -p n_train 200 -p n_test 50 -p n_val 25 -p load_size 72)
else
  step "1. data: the real sets, read-only (${CURATED_IN:-$FFHQ_DIR + $MFN_DIR})"
  if [ -n "$CURATED_IN" ]; then
    CURATION=(-p ffhq_root '' -p maskedfacenet_root '' -p curated_root "$CURATED_IN")
  else
    CURATION=(-p ffhq_root "$FFHQ_DIR" -p maskedfacenet_root "$MFN_DIR")
  fi
  # the study's sizes: 6000 train + 1000 test + 500 val a domain, images stored at the reference load_size
  CURATION+=(-p n_train 6000 -p n_test 1000 -p n_val 500 -p load_size 286 -p exclusions params/curation/manual_exclusions_study.csv)
fi
# --- 2. curation: notebook 01 ----------
step "2. curation: notebook 01 -> $DATAROOT (resumes: images already judged are skipped)"
papermill -k maskcycle --log-level WARNING notebooks/01_data_curation.ipynb "$OUT/01_data_curation.ipynb" \
  "${CURATION[@]}" -p out_dir "$DATAROOT" -p seed 0
# --- 3. sweep: notebook 02 once per params YAML ----------
step "3. sweep: notebook 02 per $PARAMS/*.yaml and seed -> $OUT/sweep/<trial>[_seed<S>]/ (skips finished runs, resumes others)"
SWEEP_RC=0
# The demo's small single-threaded trials use 2 cores better side by side than one after another;
# the study runs one trial per visible GPU (the sweep's default).
PARALLEL=""; [ "$MODE" = demo ] && PARALLEL="--parallel 2"
# shellcheck disable=SC2086  # PARALLEL and SWEEP_ARGS are lists of options
maskcycle sweep "$PARAMS"/*.yaml --out "$OUT/sweep" --set "dataroot=$DATAROOT" $PARALLEL ${SWEEP_ARGS:-} || SWEEP_RC=$?
[ "$SWEEP_RC" -ne 125 ] || { echo "run_all.sh: the sweep could not start (see above)" >&2; exit 1; }
[ "$SWEEP_RC" -eq 0 ] || echo "run_all.sh: $SWEEP_RC trial(s) failed; see run.json in their folders (continuing)" >&2
# --- 4. evaluation: notebook 03 ----------
step "4. evaluation: notebook 03 -> $OUT/03_fid_evaluation.ipynb and $OUT/sweep/comparison.csv (epochs chosen on val; seed means, intervals, differences to the baseline; FID/KID when the Inception weights are there; reuses scored checkpoints)"
# FID at a fixed reference size: 1000 images (the study), 25 for the demo's 50-image test sets
FID_REF_N=1000; [ "$MODE" = demo ] && FID_REF_N=25
papermill -k maskcycle --log-level WARNING notebooks/03_fid_evaluation.ipynb "$OUT/03_fid_evaluation.ipynb" \
  -p sweep_dir "$OUT/sweep" -p curated_dir "$DATAROOT" -p fid_ref_n "$FID_REF_N"
# --- 5. survey: quiz + notebook 04 ----------
if [ "$MODE" = demo ]; then
  step "5. survey: quiz from the sweep's best trial -> $OUT/survey; answers SIMULATED (100 people); notebook 04"
  # Never a server here (nothing started by this script outlives it): answers are simulated.
  # The demo's answers are simulated (files simulated_*.csv) and remade each run, so the demo may
  # replace an earlier quiz (--force); the study never does: answers collected with a key keep it.
  maskcycle survey build --sweep "$OUT/sweep" --curated "$DATAROOT" --out "$OUT/survey" --seed 0 --force
  maskcycle survey simulate --survey "$OUT/survey" --out "$OUT/survey/responses_simulated" --n-participants 100 \
    --dprime 0.5 --criterion 0.2 --seed 0
  RESPONSES="$OUT/survey/responses_simulated" SUMMARY="$OUT/survey/analysis_simulated.json"
else
  step "5. survey: quiz from the sweep's best trial -> $OUT/survey/survey.html (send it to participants;"
  echo "   put their downloaded CSVs in $OUT/survey/responses/ and rerun to analyse them; or serve it with"
  echo "   maskcycle survey serve, then survey export --out $OUT/survey/responses: README, survey server)"
  maskcycle survey build --sweep "$OUT/sweep" --curated "$DATAROOT" --out "$OUT/survey" --seed 0
  RESPONSES="$OUT/survey/responses" SUMMARY="$OUT/survey/analysis.json"
fi
if compgen -G "$RESPONSES/*.csv" >/dev/null; then
  papermill -k maskcycle --log-level WARNING notebooks/04_survey_analysis.ipynb "$OUT/04_survey_analysis.ipynb" \
    -p survey_dir "$OUT/survey" -p responses_dir "$RESPONSES" -p summary_out "$SUMMARY"
else
  echo "   no responses in $RESPONSES yet: notebook 04 not rendered"
fi
# --- 6. summary ---------------------------------------------------------------------------------
step "6. summary: $OUT/sweep/summary.csv"
python -c 'import sys, pandas as pd; from maskcycle.results import write_summary
pd.set_option("display.width", 250); print(write_summary(sys.argv[1]).to_string(index=False))' "$OUT/sweep"
echo; echo "rendered notebooks (open with: source lib/setup_env.sh && jupyter lab):"
find "$OUT" -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort | sed 's/^/  /'
[ "$SWEEP_RC" -eq 0 ] || { echo "run_all.sh: $SWEEP_RC trial(s) failed" >&2; exit 1; }

step "done in $(( $(date +%s) - t0 ))s; outputs under $OUT/"
