"""Exercise packs: the one documented format (docs/exercise-format.md), read and written."""

from __future__ import annotations

import errno
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SKILL_VOCABULARY = (
    "variables", "conditionals", "loops", "strings", "lists", "dictionaries", "sets", "tuples",
    "functions", "recursion", "sorting-searching", "classes", "error-handling", "comprehensions",
    "generators", "algorithms", "math", "closures", "higher-order-functions", "arrays", "objects",
)  # fmt: skip

SLUG_PATTERN = r"^[a-z0-9-]{1,80}$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
MAX_CODE_CHARS = 64 * 1024
PACK_SUFFIXES = (".yaml", ".yml", ".json")
# Larger than any exercise the rules allow can be, however it is spelt (three code fields of
# 64 KB of four-byte characters, the statement and hints, JSON escapes): a bigger file or line
# is refused unread, where parsing it would take minutes and its size in memory many times.
MAX_ENTRY_BYTES = 4 * 1024 * 1024


class ExerciseSpec(BaseModel):
    """One exercise as it appears in a pack."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    slug: str = Field(pattern=SLUG_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    language: Literal["python", "javascript"]
    difficulty: int = Field(ge=1, le=5, strict=True)
    skills: list[str] = Field(min_length=1, max_length=6)
    statement: str = Field(min_length=1, max_length=20_000)
    starter_code: str = Field(max_length=MAX_CODE_CHARS)
    solution: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    tests: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    hints: list[str] = Field(min_length=1, max_length=5)
    time_limit_s: float | None = Field(default=None, gt=0, le=60)
    memory_limit_mb: int | None = Field(default=None, ge=16, le=4096)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for tag in value:
            tag = tag.strip().lower()
            if not re.match(TAG_PATTERN, tag):
                raise ValueError(f"skill tag {tag!r} must match {TAG_PATTERN}")
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned

    @field_validator("hints")
    @classmethod
    def _hints(cls, value: list[str]) -> list[str]:
        if any(not h.strip() for h in value):
            raise ValueError("hints must not be blank")
        if any(len(h) > 2000 for h in value):
            raise ValueError("a hint is at most 2000 characters")
        return value

    @model_validator(mode="after")
    def _storable(self) -> ExerciseSpec:
        # PostgreSQL's text holds neither a NUL nor half of a surrogate pair (JSON can spell
        # both): refused here, the exercise is named, instead of its whole batch failing in
        # the database, and a pack imports the same on SQLite and PostgreSQL.
        for name, value in self:
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and not _storable(text):
                    raise ValueError(
                        f"{name} holds a NUL character or a lone surrogate, which cannot be stored"
                    )
        return self

    def content_hash(self) -> str:
        payload = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


def _storable(text: str) -> bool:
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


@dataclass(frozen=True)
class PackEntry:
    """An exercise read from a pack, or the reason it was rejected."""

    origin: str
    spec: ExerciseSpec | None
    error: str | None = None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "exercise"
        parts.append(f"{where}: {err['msg']}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)


def parse_entry(origin: str, data: object) -> PackEntry:
    if not isinstance(data, dict):
        return PackEntry(origin, None, "an exercise must be a mapping of fields")
    try:
        return PackEntry(origin, ExerciseSpec.model_validate(data))
    except ValidationError as exc:
        return PackEntry(origin, None, _describe(exc))


def read_pack(path: Path) -> Iterator[PackEntry]:
    """Every exercise in a `.jsonl` file or a directory of one-exercise YAML/JSON files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in PACK_SUFFIXES and p.is_file())
        for file in files:
            origin = str(file)
            try:
                if file.stat().st_size > MAX_ENTRY_BYTES:
                    yield PackEntry(origin, None, _too_large(file.stat().st_size))
                    continue
                # utf-8-sig: a file an editor saved with a byte-order mark reads as text.
                text = file.read_text("utf-8-sig")
                data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
            except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
                yield PackEntry(origin, None, f"cannot be read: {exc}".splitlines()[0])
                continue
            yield parse_entry(origin, data)
        return
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: expected a .jsonl file or a directory")
    # Read as bytes and decoded line by line: a line that is not UTF-8 is rejected with its
    # number, the rest of the pack still read.
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(MAX_ENTRY_BYTES + 1):
            number += 1
            origin = f"{path}:{number}"
            if len(raw) > MAX_ENTRY_BYTES and not raw.endswith(b"\n"):
                size = len(raw)
                while (rest := handle.readline(MAX_ENTRY_BYTES)) and not rest.endswith(b"\n"):
                    size += len(rest)  # the rest of the line, skipped a piece at a time
                yield PackEntry(origin, None, _too_large(size + len(rest)))
                continue
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                yield PackEntry(origin, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")
                continue
            except ValueError as exc:
                yield PackEntry(origin, None, f"not valid JSON: {exc}")
                continue
            yield parse_entry(origin, data)


def _too_large(size: int) -> str:
    return (
        f"{size / 1024 / 1024:.1f} MB is too large: an exercise takes at most "
        f"{MAX_ENTRY_BYTES // 1024 // 1024} MB"
    )


def check_unique(entries: Iterable[PackEntry]) -> list[PackEntry]:
    """Reject later entries that repeat a slug already seen in the same pack."""
    seen: dict[str, str] = {}
    result = []
    for entry in entries:
        if entry.spec is not None:
            first = seen.setdefault(entry.spec.slug, entry.origin)
            if first != entry.origin:
                entry = PackEntry(entry.origin, None, f"slug {entry.spec.slug!r} repeats {first}")
        result.append(entry)
    return result


def builtin_pack_path() -> Path:
    """The directory of the built-in exercise bank shipped with Koan."""
    return Path(str(resources.files("koan") / "content"))


def write_pack(specs: Iterable[ExerciseSpec], path: Path) -> int:
    """Write specs to a `.jsonl` file or, for any other path, a directory of YAML files."""
    count = 0
    if path.suffix == ".jsonl":
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for spec in specs:
                handle.write(json.dumps(_plain(spec), ensure_ascii=False) + "\n")
                count += 1
        return count
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            "it is not a directory (a pack is a directory to fill, or a file ending in .jsonl)",
            str(path),
        )
    path.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        target = path / spec.language / f"{spec.slug}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            yaml.dump(_plain(spec), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        count += 1
    return count


def _plain(spec: ExerciseSpec) -> dict[str, object]:
    return spec.model_dump(exclude_none=True)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so exported code stays readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)
