"""A built survey folder as the server needs it: the page's images and ids, the key's survey id, and
the optional participant texts (`consent.txt`, `questions.json`) a group puts beside them.

    consent.txt     plain text shown before the quiz (paragraphs split by blank lines); the
                    participant must tick "I agree" to start
    questions.json  [{"id": "age", "text": "Your age", "choices": ["18-29", "30-49", "50+", "rather not say"]}]
                    answered once, from the given choices only
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from maskcycle.survey.analysis import read_key
from maskcycle.survey.page import INFO_NAME, KEY_NAME, PAGE_NAME, read_page, survey_id_of

CONSENT_NAME = "consent.txt"
QUESTIONS_NAME = "questions.json"
QUESTION_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
LIMITS = {"questions": 20, "choices": 20, "text": 500, "consent": 20_000}
# Never served, whatever a route asks for: the analyst's side of the folder.
PRIVATE_NAMES = (KEY_NAME, INFO_NAME)


def load_survey(folder: str | Path) -> dict:
    """The survey in `folder`: survey_id, title, page data, images {id: PNG bytes}, items {id: role},
    consent paragraphs, questions. ValueError naming the file for anything missing or inconsistent."""
    folder = Path(folder)
    page, key_path = folder / PAGE_NAME, folder / KEY_NAME
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such survey folder")
    for path in (page, key_path):
        if not path.is_file():
            raise ValueError(f"{path}: missing (build the quiz with maskcycle survey build --out {folder})")
    data, title = read_page(page)
    key = read_key(key_path)
    sid = survey_id_of(key.to_dict("records"))
    if data["survey_id"] != sid:
        raise ValueError(f"{page}: page of survey {data['survey_id']}, but {key_path} is the key of survey {sid}")
    items, images = {}, {}
    for role in ("practice", "main", "attention"):
        for item in data[role]:
            items[item["id"]] = {"id": item["id"], "role": role}
            images[item["id"]] = base64.b64decode(item["src"].split(",", 1)[1])
    key_roles = dict(zip(key["image_id"], key["role"]))
    if {i: v["role"] for i, v in items.items()} != key_roles:
        raise ValueError(f"{page}: its images are not those of {key_path}")
    return {"folder": folder, "survey_id": sid, "key_path": str(key_path), "title": title, "data": data,
            "items": items, "images": images, "consent": _consent(folder / CONSENT_NAME),
            "questions": _questions(folder / QUESTIONS_NAME)}


def _consent(path: Path) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8-sig")
    if len(text) > LIMITS["consent"]:
        raise ValueError(f"{path}: longer than {LIMITS['consent']} characters")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _questions(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        qs = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(qs, list) or len(qs) > LIMITS["questions"]:
        raise ValueError(f"{path}: must be a list of at most {LIMITS['questions']} questions")
    seen = set()
    for k, q in enumerate(qs):
        where = f"{path}: question {k + 1}"
        if not isinstance(q, dict) or set(q) != {"id", "text", "choices"}:
            raise ValueError(f"{where}: needs exactly the fields id, text, choices")
        if not isinstance(q["id"], str) or not QUESTION_ID.match(q["id"]) or q["id"] in seen:
            raise ValueError(f"{where}: id must be unique, lower-case letters, digits or _, got {q['id']!r}")
        seen.add(q["id"])
        if not isinstance(q["text"], str) or not 0 < len(q["text"]) <= LIMITS["text"]:
            raise ValueError(f"{where}: text must be 1 to {LIMITS['text']} characters")
        ch = q["choices"]
        if (not isinstance(ch, list) or not 2 <= len(ch) <= LIMITS["choices"] or len(set(map(str, ch))) != len(ch)
                or not all(isinstance(c, str) and 0 < len(c) <= 200 for c in ch)):
            raise ValueError(f"{where}: choices must be 2 to {LIMITS['choices']} different texts")
    return qs
