"""The real-vs-fake survey: build the quiz, read the answers, analyse them.

    maskcycle survey build    --sweep results/demo/sweep --curated results/demo/curated --out DIR
    maskcycle survey simulate --survey DIR --out DIR/responses_simulated
    maskcycle survey analyse  --survey DIR --responses DIR/responses_simulated

Building lives in `survey_page`, statistics in `survey_stats`, the simulator in `survey_sim`; this
module reads response CSVs against the key and puts the analysis together (notebook 04 shows it).
Truth is never in a response file: it is joined from the key here.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from maskcycle.config import at_least
from maskcycle.io import atomic_write_text, check_output
from maskcycle.survey import stats as st
from maskcycle.survey.page import KEY_COLUMNS, KEY_NAME, survey_id_of
from maskcycle.survey.simulate import LEGACY_COLUMNS, PARAMS_NAME, RESPONSE_COLUMNS

RESPONSES = {"real", "fake"}
FILE_SURVEY_ID = re.compile(r"^(s[0-9a-f]{8})_")  # the page names its downloads <survey id>_<participant>_<time>


class SurveyDataError(ValueError):
    """A malformed key or response file; the message names the file (and line)."""


@dataclasses.dataclass
class Responses:
    """Answers joined with the key, and what was set aside while reading."""

    answers: pd.DataFrame  # main trials of the kept sessions, one row per answer, truth joined
    attention: pd.DataFrame  # attention-check rows of the kept sessions
    sessions: pd.DataFrame  # every session read: participant, start, file, counts, complete, kept, why
    files: list[Path]  # the files read (an exact copy of another file is read once)
    duplicates: list[tuple[Path, Path]] = dataclasses.field(default_factory=list)  # (copy, the file kept)
    simulated: bool = False  # every file came from `survey simulate`


def read_key(path: str | Path) -> pd.DataFrame:
    """The analyst's key (image_id -> role, truth, domain, direction, trial, source file)."""
    path = Path(path)
    if path.is_dir():
        path = path / KEY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: survey key not found")
    try:
        key = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SurveyDataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    for optional in ("source", "identity"):  # keys written before sources and identities were recorded
        if optional not in key.columns:
            key[optional] = ""
    missing = [c for c in KEY_COLUMNS if c not in key.columns]
    if missing:
        raise SurveyDataError(f"{path}: key lacks columns {missing}")
    if key["image_id"].duplicated().any():
        raise SurveyDataError(f"{path}: duplicate image ids {sorted(key['image_id'][key['image_id'].duplicated()])}")
    bad = ~key["truth"].isin(["real", "fake", "attention"])
    if bad.any():
        raise SurveyDataError(f"{path}: line {int(np.flatnonzero(bad)[0]) + 2}: truth must be real, fake or attention")
    return key


def _parse_file(path: Path, known_ids: set[str]) -> list[dict]:
    try:
        return _parse_rows(path, known_ids)
    except UnicodeDecodeError as exc:
        raise SurveyDataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _parse_rows(path: Path, known_ids: set[str]) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark is no error
        reader = csv.reader(fh)
        header = next(reader, None)
        if header not in (RESPONSE_COLUMNS, LEGACY_COLUMNS):
            raise SurveyDataError(f"{path}: line 1: header must be {','.join(RESPONSE_COLUMNS)}, got {header}")
        named = FILE_SURVEY_ID.match(path.name)  # older pages wrote the survey id in the file name only
        for fields in reader:
            line = reader.line_num
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                raise SurveyDataError(f"{path}: line {line}: expected {len(header)} fields, got {len(fields)}")
            r = dict(zip(header, fields))
            if header == LEGACY_COLUMNS:
                r["survey_id"] = named.group(1) if named else ""
            if rows and r["survey_id"] != rows[0]["survey_id"]:
                raise SurveyDataError(f"{path}: line {line}: survey id {r['survey_id']!r}, but "
                                      f"{rows[0]['survey_id']!r} on line {rows[0]['line']}")
            try:
                r["trial_index"] = int(r["trial_index"])
                r["rt_ms"] = float(r["rt_ms"])
                r["is_practice"] = _flag(r["is_practice"])
                r["is_attention_check"] = _flag(r["is_attention_check"])
            except ValueError as exc:
                raise SurveyDataError(f"{path}: line {line}: {exc}") from None
            if r["response"] not in RESPONSES:
                raise SurveyDataError(f"{path}: line {line}: response must be real or fake, got {r['response']!r}")
            if r["image_id"] not in known_ids:
                raise SurveyDataError(f"{path}: line {line}: image id {r['image_id']!r} is not in the key")
            if not r["participant_id"] or not r["session_start"]:
                raise SurveyDataError(f"{path}: line {line}: empty participant_id or session_start")
            if r["rt_ms"] < 0:
                raise SurveyDataError(f"{path}: line {line}: negative rt_ms {r['rt_ms']}")
            r["file"], r["line"] = str(path), line
            rows.append(r)
    return rows


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(f"flag must be 0 or 1, got {value!r}")
    return value == "1"


def refuse_other_survey(found: dict[str, str], expected: str, key: str) -> None:
    """The one survey-id check (response files, the server's database and its submissions): every
    source in `found` (name -> survey id, "" when it carries none) must be of survey `expected`,
    whose key is `key`; otherwise SurveyDataError naming the sources."""
    other = {src: sid for src, sid in found.items() if sid != expected}
    if not other:
        return
    listed = sorted(other.items())
    names = ", ".join(f"{src} ({sid or 'no survey id'})" for src, sid in listed[:5])
    more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
    hint = ("; files written before survey ids were recorded can be named <survey id>_<anything>.csv if they "
            "surely belong to it" if any(not sid for _, sid in listed) else "; they go with their own survey's key")
    raise SurveyDataError(f"of another survey than {key} ({expected}): {names}{more}{hint}")


def file_survey_id(path: Path) -> str | None:
    """The survey id a response file carries (its first row's, else its name's for files from before
    ids were written; "" for none); None when the file cannot tell (reading it reports why)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            first = next((f for f in reader if f and f != [""]), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    if first is None or header not in (RESPONSE_COLUMNS, LEGACY_COLUMNS) or len(first) != len(header):
        return None
    if header == RESPONSE_COLUMNS:
        return first[-1]
    named = FILE_SURVEY_ID.match(path.name)
    return named.group(1) if named else ""


def is_simulated(path: Path) -> bool:
    """A file written by `survey simulate` (its names, or its parameters file beside it)."""
    return path.name.startswith("simulated_") or (path.parent / PARAMS_NAME).is_file()


def response_files(folder: Path) -> tuple[list[Path], list[tuple[Path, Path]], bool]:
    """The response CSVs below `folder` (recursively; a survey key is no response): the files to read,
    the exact copies left out (copy, original: a page's download saved twice is one session), and
    whether all are simulated. Simulated files beside real ones are refused, never silently mixed."""
    files = sorted(f for f in folder.rglob("*.csv") if f.name != KEY_NAME) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no response CSV files")
    sim = [f for f in files if is_simulated(f)]
    if sim and len(sim) < len(files):
        real = [f for f in files if not is_simulated(f)]
        where = sorted({str(f.parent) for f in sim})
        raise SurveyDataError(f"{folder}: holds {len(sim)} simulated response files (in {', '.join(where[:3])}) "
                              f"and {len(real)} from participants (e.g. {real[0]}); point --responses at a folder "
                              f"of one kind")
    seen: dict[str, Path] = {}
    kept, copies = [], []
    for f in sorted(files, key=lambda f: (len(f.name), str(f))):  # "x.csv" is kept, "x (1).csv" is the copy
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        if digest in seen:
            copies.append((f, seen[digest]))
        else:
            seen[digest] = f
            kept.append(f)
    return sorted(kept), copies, bool(sim)


def read_responses(folder: str | Path, key: pd.DataFrame | str | Path) -> Responses:
    """Every *.csv in `folder` (recursively), checked against the key. Malformed rows raise
    SurveyDataError naming file and line, as do files of another survey (by survey id) and simulated
    files mixed with real ones; an exact copy of a file is read once. Each session (participant,
    session_start) is complete when it answered every main image and attention check once; of several
    sessions of one participant the earliest complete one is kept and the others are reported, as
    are incomplete sessions."""
    key_name = str(key) if not isinstance(key, pd.DataFrame) else "the key"
    if not isinstance(key, pd.DataFrame):
        key = read_key(key)
    folder = Path(folder)
    files, copies, simulated = response_files(folder)
    ids = {str(f): file_survey_id(f) for f in files}  # before any row: another survey's ids are no typo
    refuse_other_survey({f: i for f, i in ids.items() if i is not None}, survey_id_of(key.to_dict("records")),
                        key_name)
    known = set(key["image_id"])
    rows = [r for f in files for r in _parse_file(f, known)]
    df = pd.DataFrame(rows, columns=RESPONSE_COLUMNS + ["file", "line"])
    role = df["image_id"].map(dict(zip(key["image_id"], key["role"])))
    bad = (df["is_practice"] != (role == "practice")) | (df["is_attention_check"] != (role == "attention"))
    if bad.any():  # the flags must agree with the key
        r = df[bad].iloc[0]
        raise SurveyDataError(f"{r['file']}: line {r['line']}: flags disagree with the key's role "
                              f"{role[bad].iloc[0]!r} for {r['image_id']}")
    need = set(key.loc[key["role"].isin(["main", "attention"]), "image_id"])
    sessions = []
    for (pid, start), g in df.groupby(["participant_id", "session_start"], sort=True):
        scored = g[~g["is_practice"]]
        dup = scored["image_id"].duplicated().any()
        complete = set(scored["image_id"]) == need and not dup
        why = "" if complete else ("an image answered twice" if dup else
                                  f"answered {len(set(scored['image_id']) & need)} of {len(need)}")
        sessions.append({"participant_id": pid, "session_start": start, "file": ";".join(sorted(set(g["file"]))),
                         "n_rows": len(g), "complete": complete, "kept": False, "why": why})
    sessions = pd.DataFrame(sessions)
    for _, g in sessions.groupby("participant_id"):
        done = g[g["complete"]].sort_values("session_start")
        if len(done):
            sessions.loc[done.index[0], "kept"] = True
            sessions.loc[done.index[1:], "why"] = "repeat session of this participant"
    kept = sessions[sessions["kept"]][["participant_id", "session_start"]]
    df = df.merge(kept, on=["participant_id", "session_start"])
    df = df.merge(key, on="image_id", how="left")
    answers = df[df["role"] == "main"].copy()
    answers["correct"] = answers["response"] == answers["truth"]
    answers["error"] = ~answers["correct"]
    answers["category"] = np.where(answers["truth"] == "real", "real_" + answers["domain"],
                                   "fake_" + answers["direction"])
    attention = df[df["role"] == "attention"].copy()
    attention["passed"] = attention["response"] == attention["expected_response"]
    return Responses(answers.reset_index(drop=True), attention.reset_index(drop=True), sessions, files, copies,
                     simulated)


def participant_table(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per participant: score (correct answers), hits, false alarms and per-person d', c
    (log-linear corrected, since 11 answers per class can be all right)."""
    rows = []
    for pid, g in answers.groupby("participant_id"):
        fake, real = g[g["truth"] == "fake"], g[g["truth"] == "real"]
        hits, fas = int((fake["response"] == "fake").sum()), int((real["response"] == "fake").sum())
        h, f = st.loglinear_rates(hits, len(fake), fas, len(real))
        d, c = st.dprime(h, f)
        rows.append({"participant_id": pid, "n": len(g), "score": int(g["correct"].sum()),
                     "errors": int(g["error"].sum()), "hits": hits, "n_fake": len(fake), "false_alarms": fas,
                     "n_real": len(real), "dprime_ll": d, "criterion_ll": c,
                     "median_rt_ms": float(g["rt_ms"].median())})
    return pd.DataFrame(rows)


def rate_table(answers: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Error rates with Wilson and Clopper-Pearson intervals, the binomial test against 50 %, and a
    participant-level cluster bootstrap interval: overall, fool rate (fakes judged real) overall and
    per direction, and real-image error rate (reals judged fake) overall and per domain."""
    subsets = {
        "error rate (all answers)": answers,
        "fool rate: fakes judged real": answers[answers["truth"] == "fake"],
        "fool rate: masking fakes (G_AB, shows B)": answers[answers["direction"] == "AB"],
        "fool rate: unmasking fakes (G_BA, shows A)": answers[answers["direction"] == "BA"],
        **{f"fool rate: source {src}": answers[(answers["truth"] == "fake") & (answers["source"] == src)]
           for src in (sorted(set(answers.loc[answers["truth"] == "fake", "source"])) if "source" in answers else [])
           if src},
        "real error rate: reals judged fake": answers[answers["truth"] == "real"],
        "real error rate: unmasked reals (A)": answers[(answers["truth"] == "real") & (answers["domain"] == "A")],
        "real error rate: masked reals (B)": answers[(answers["truth"] == "real") & (answers["domain"] == "B")],
    }
    rows = []
    for name, sub in subsets.items():
        if sub.empty:
            continue
        k, n = int(sub["error"].sum()), len(sub)
        g = sub.groupby("participant_id")["error"].agg(["sum", "count"]).to_numpy()
        lo, hi, _ = st.cluster_bootstrap(g, st.ratio_stat(0, 1), n_boot=n_boot, seed=seed)
        rows.append({"measure": name, **st.proportion(k, n), "boot_lo": lo, "boot_hi": hi})
    return pd.DataFrame(rows)


def sdt_summary(answers: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pooled d' and criterion with delta-method (independent answers) and cluster bootstrap
    (participants resampled) intervals."""
    p = participant_table(answers)
    hits, n_sig, fas, n_noise = (int(p[c].sum()) for c in ("hits", "n_fake", "false_alarms", "n_real"))
    h, f = hits / n_sig, fas / n_noise
    if not (0 < h < 1 and 0 < f < 1):
        h, f = st.loglinear_rates(hits, n_sig, fas, n_noise)
    d, c = st.dprime(h, f)
    se_d, se_c = st.dprime_se(h, f, n_sig, n_noise)
    g = p[["hits", "n_fake", "false_alarms", "n_real"]].to_numpy()
    d_lo, d_hi, _ = st.cluster_bootstrap(g, st.sdt_stat(0, 1, 2, 3, "dprime"), n_boot=n_boot, seed=seed)
    c_lo, c_hi, _ = st.cluster_bootstrap(g, st.sdt_stat(0, 1, 2, 3, "c"), n_boot=n_boot, seed=seed)
    return {"hit_rate": h, "false_alarm_rate": f, "dprime": d, "criterion": c,
            "dprime_delta_lo": d - 1.96 * se_d, "dprime_delta_hi": d + 1.96 * se_d,
            "criterion_delta_lo": c - 1.96 * se_c, "criterion_delta_hi": c + 1.96 * se_c,
            "dprime_boot_lo": d_lo, "dprime_boot_hi": d_hi, "criterion_boot_lo": c_lo, "criterion_boot_hi": c_hi}


def image_table(answers: pd.DataFrame) -> pd.DataFrame:
    """Per-image difficulty: share of wrong answers with a Wilson interval, hardest first."""
    rows = []
    for iid, g in answers.groupby("image_id"):
        k, n = int(g["error"].sum()), len(g)
        lo, hi = st.wilson(k, n)
        first = g.iloc[0]
        rows.append({"image_id": iid, "category": first["category"], "source_file": first["source_file"],
                     "errors": k, "n": n, "error_rate": k / n, "wilson_lo": lo, "wilson_hi": hi})
    return pd.DataFrame(rows).sort_values(["error_rate", "image_id"], ascending=[False, True]).reset_index(drop=True)


def recovery_table(sdt: dict, rates: pd.DataFrame, sim: dict) -> pd.DataFrame:
    """Simulator's implied population values against the analysis' cluster-bootstrap intervals."""
    r = rates.set_index("measure")
    imp = sim["implied"]
    rows = [("dprime (pooled)", imp["dprime"], sdt["dprime"], sdt["dprime_boot_lo"], sdt["dprime_boot_hi"]),
            ("criterion (pooled)", imp["criterion"], sdt["criterion"], sdt["criterion_boot_lo"],
             sdt["criterion_boot_hi"])]
    for label, measure, name in [("fool rate", "fool rate: fakes judged real", "fool_rate"),
                                 ("real error rate", "real error rate: reals judged fake", "real_error_rate")]:
        rr = r.loc[measure]
        rows.append((label, imp[name], rr["rate"], rr["boot_lo"], rr["boot_hi"]))
    df = pd.DataFrame(rows, columns=["parameter", "simulated", "estimate", "lo", "hi"])
    df["recovered"] = (df["lo"] <= df["simulated"]) & (df["simulated"] <= df["hi"])
    return df


def analyse(survey_dir: str | Path, responses_dir: str | Path, n_boot: int = 2000, seed: int = 0) -> dict:
    """The whole analysis as plain tables (what notebook 04 shows and `survey analyse` prints)."""
    key = read_key(survey_dir)
    resp = read_responses(responses_dir, key)
    if resp.answers.empty:
        raise SurveyDataError(f"{responses_dir}: no complete session to analyse")
    rates = rate_table(resp.answers, n_boot=n_boot, seed=seed)
    sdt = sdt_summary(resp.answers, n_boot=n_boot, seed=seed)
    gee, rho = st.gee_rates(resp.answers.assign(error=resp.answers["error"].astype(int)), "error", "category",
                            "participant_id")
    out = {"responses": resp, "participants": participant_table(resp.answers), "rates": rates, "sdt": sdt,
           "gee": gee, "gee_within_participant_correlation": rho, "images": image_table(resp.answers),
           "published": st.published_aggregate()}
    folders = {f.parent for f in resp.files} if resp.simulated else set()
    sim_file = folders.pop() / PARAMS_NAME if len(folders) == 1 else Path(responses_dir) / PARAMS_NAME
    if sim_file.is_file():
        sim = json.loads(sim_file.read_text())
        out["simulation"] = sim
        out["recovery"] = recovery_table(sdt, rates, sim)
    return out


def summary_json(result: dict) -> dict:
    """The analysis' numbers as JSON-ready data (tables as records)."""
    resp: Responses = result["responses"]
    out = {"n_sessions_read": len(resp.sessions), "n_participants": int(resp.sessions["kept"].sum()),
           "simulated": resp.simulated, "n_files": len(resp.files),
           "duplicate_files": [{"file": str(c), "copy_of": str(o)} for c, o in resp.duplicates],
           "sessions_set_aside": resp.sessions[~resp.sessions["kept"]].to_dict("records"),
           "attention_pass_rate": float(resp.attention["passed"].mean()) if len(resp.attention) else None,
           "rates": result["rates"].to_dict("records"), "sdt": result["sdt"],
           "gee": result["gee"].to_dict("records"),
           "gee_within_participant_correlation": result["gee_within_participant_correlation"],
           "images": result["images"].to_dict("records"), "published": result["published"]}
    if "recovery" in result:
        out["simulation"] = result["simulation"]
        out["recovery"] = result["recovery"].to_dict("records")
    return json.loads(json.dumps(out, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_summary(result: dict, path: str | Path) -> Path:
    atomic_write_text(Path(path), json.dumps(summary_json(result), indent=2) + "\n")
    return Path(path)


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle survey analyse`."""
    p.add_argument("--survey", required=True, help="folder with key.csv")
    p.add_argument("--responses", required=True, help="folder of response CSVs (searched recursively)")
    p.add_argument("--out", help="write the analysis as JSON here")
    p.add_argument("--n-boot", type=at_least(1), default=2000)
    p.add_argument("--seed", type=int, default=0)


def run_command(args) -> int:
    if args.out:
        check_output(args.out, [("--survey", args.survey), ("--responses", args.responses)], kind="file",
                     suffix=".json")
    result = analyse(args.survey, args.responses, n_boot=args.n_boot, seed=args.seed)
    summary = summary_json(result)
    if args.out:
        write_summary(result, args.out)
    kind = "SIMULATED answers (survey simulate)" if summary["simulated"] else "answers from participants"
    print(f"{summary['n_files']} response files, {kind}; {summary['n_participants']} participants kept")
    for d in summary["duplicate_files"]:
        print(f"  {d['file']}: an exact copy of {d['copy_of']}, counted once")
    for r in summary["rates"]:
        print(f"{r['measure']}: {100 * r['rate']:.2f} % ({r['k']}/{r['n']}), Wilson "
              f"[{100 * r['wilson_lo']:.2f}, {100 * r['wilson_hi']:.2f}], participant bootstrap "
              f"[{100 * r['boot_lo']:.2f}, {100 * r['boot_hi']:.2f}], p(50 %) = {r['p_vs_50']:.3g}")
    print("d' and criterion:", json.dumps({k: round(v, 4) for k, v in summary["sdt"].items()}))
    if "recovery" in summary:
        print("simulated parameters recovered:", all(r["recovered"] for r in summary["recovery"]))
    print_set_aside(summary["sessions_set_aside"])
    return 0


def print_set_aside(sessions: list[dict]) -> None:
    """On stdout, so that a script reading the analysis sees who was left out and why."""
    print(f"sessions set aside: {len(sessions)}")
    for s in sessions:
        print(f"  participant {s['participant_id']} (session {s['session_start']}, {s['file']}): {s['why']}")
