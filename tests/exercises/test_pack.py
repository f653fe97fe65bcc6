"""The exercise pack format: reading, rejecting with reasons, writing back."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from koan.exercises.pack import check_unique, read_pack, write_pack
from tests.fixtures.factories import exercise_spec


def test_jsonl_pack_reports_each_rejected_line_with_its_reason(tmp_path: Path) -> None:
    good = exercise_spec(slug="good-one").model_dump(exclude_none=True)
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "slug": "Bad Slug!"}),
        json.dumps({**good, "slug": "level-zero", "difficulty": 0}),
        json.dumps({**good, "slug": "extra", "surprise": 1}),
        json.dumps({k: v for k, v in good.items() if k != "tests"} | {"slug": "no-tests"}),
        json.dumps(["a", "list"]),
        json.dumps({**good, "slug": "hints-six", "hints": ["h"] * 6}),
        json.dumps(good),
    ]
    pack = tmp_path / "pack.jsonl"
    pack.write_text("\n".join(lines) + "\n\n")
    entries = check_unique(read_pack(pack))
    assert [e.spec.slug for e in entries if e.spec] == ["good-one"]
    errors = [e.error or "" for e in entries if e.spec is None]
    assert len(errors) == 8
    assert "not valid JSON" in errors[0]
    assert "slug" in errors[1]
    assert "difficulty" in errors[2]
    assert "surprise" in errors[3]
    assert "tests" in errors[4]
    assert "mapping" in errors[5]
    assert "hints" in errors[6]
    assert "repeats" in errors[7]
    assert "pack.jsonl:1" in errors[7]
    assert entries[1].origin.endswith("pack.jsonl:2")


def test_directory_pack_and_round_trip(tmp_path: Path) -> None:
    specs = [exercise_spec(slug=f"ex-{i}", difficulty=i) for i in (1, 2, 3)]
    out = tmp_path / "bank"
    assert write_pack(specs, out) == 3
    written = sorted(out.rglob("*.yaml"))
    assert [p.name for p in written] == ["ex-1.yaml", "ex-2.yaml", "ex-3.yaml"]
    # Code is written as readable blocks, not escaped one-liners.
    assert "solution: |" in written[0].read_text()
    (out / "python" / "broken.yaml").write_text("slug: [unclosed")
    (out / "python" / "notes.txt").write_text("ignored")
    entries = list(read_pack(out))
    read_back = [e.spec for e in entries if e.spec]
    assert read_back == specs
    assert [e.error for e in entries if e.spec is None][0].startswith("cannot be read")

    jsonl = tmp_path / "bank.jsonl"
    write_pack(specs, jsonl)
    assert [e.spec for e in read_pack(jsonl)] == specs
    assert yaml.safe_load(written[0].read_text())["slug"] == "ex-1"
