"""The exercise pack format: reading, rejecting with reasons, writing back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from koan.exercises import pack
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


def test_a_line_that_is_not_utf8_is_rejected_alone(tmp_path: Path) -> None:
    rows = [exercise_spec(slug=f"line-{i}").model_dump(exclude_none=True) for i in range(3)]
    latin1 = json.dumps({**rows[1], "title": "Café"}, ensure_ascii=False).encode("latin-1")
    pack = tmp_path / "pack.jsonl"
    # A byte-order mark, as some editors write one, is not part of the first exercise.
    pack.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(rows[0]).encode() + b"\n" + latin1 + b"\n"
        + json.dumps(rows[2]).encode() + b"\n"
    )  # fmt: skip
    entries = list(read_pack(pack))
    assert [e.spec.slug for e in entries if e.spec] == ["line-0", "line-2"]
    (bad,) = [e for e in entries if e.spec is None]
    assert bad.origin.endswith("pack.jsonl:2")
    assert "not UTF-8" in (bad.error or "")


def test_a_file_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    spec = exercise_spec(slug="with-bom").model_dump(exclude_none=True)
    (tmp_path / "a.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(spec).encode())
    (tmp_path / "b.yaml").write_bytes(
        b"\xef\xbb\xbf" + yaml.safe_dump({**spec, "slug": "yaml-bom"}).encode()
    )
    entries = list(read_pack(tmp_path))
    assert sorted(e.spec.slug for e in entries if e.spec) == ["with-bom", "yaml-bom"]


def test_text_the_database_cannot_hold_is_refused_by_name(tmp_path: Path) -> None:
    good = exercise_spec(slug="good").model_dump(exclude_none=True)
    lines = [
        json.dumps({**good, "slug": "nul", "statement": "Add\u0000 them"}),
        json.dumps({**good, "slug": "surrogate", "hints": ["fine", "half \ud800 a pair"]}),
        json.dumps(good),
    ]
    pack = tmp_path / "pack.jsonl"
    pack.write_text("\n".join(lines) + "\n")
    entries = list(read_pack(pack))
    assert [e.spec.slug for e in entries if e.spec] == ["good"]
    errors = [e.error or "" for e in entries if e.spec is None]
    assert "statement holds a NUL character" in errors[0]
    assert "hints holds a NUL character or a lone surrogate" in errors[1]


def test_a_rejection_says_how_many_problems_it_left_out(tmp_path: Path) -> None:
    pack = tmp_path / "pack.jsonl"
    pack.write_text(json.dumps({"slug": "bare"}) + "\n")
    (entry,) = read_pack(pack)
    assert (entry.error or "").endswith("and 4 more")


def test_files_and_lines_larger_than_any_exercise_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pack, "MAX_ENTRY_BYTES", 4096)
    good = exercise_spec(slug="small").model_dump(exclude_none=True)
    huge = {**good, "slug": "huge", "statement": "x" * 10_000}
    pack_file = tmp_path / "pack.jsonl"
    pack_file.write_text(json.dumps(huge) + "\n" + json.dumps(good) + "\n" + json.dumps(huge))
    entries = list(read_pack(pack_file))
    assert [e.spec.slug if e.spec else e.error for e in entries] == [
        entries[0].error,
        "small",
        entries[2].error,
    ]
    assert "too large: an exercise takes at most" in (entries[0].error or "")
    assert entries[2].origin.endswith("pack.jsonl:3")

    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "big.yaml").write_text(yaml.safe_dump(huge))
    (folder / "small.json").write_text(json.dumps(good))
    read = {Path(e.origin).name: e for e in read_pack(folder)}
    assert read["small.json"].spec is not None
    assert "too large" in (read["big.yaml"].error or "")
