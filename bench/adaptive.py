"""Simulation benchmark: Koan's adaptive engine against a 3-up/2-down staircase.

Simulated learners have hidden true abilities per skill (some improve as they practise) and the
exercises have hidden true difficulties. Both methods see only outcomes; the bench scores them
against the hidden truth. Plain Python, seeded, reproducible; matplotlib only for the plot.

    .venv/bin/python bench/adaptive.py [--learners 500] [--items 25] [--seed 7] [--per-day 10]
        [--ceiling] [--world NAME=VALUE ...] [--synthetic] [--write]

--write puts the table into docs/adaptive.md (between the bench markers) and the plot into
docs/adaptive.png. The engine never sees the hidden world; only this file does.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from koan.adaptive import (
    GENERAL,
    SETTLED_ATTEMPTS,
    Candidate,
    ItemRating,
    SkillRating,
    choose_exercise,
    cold_start_rating,
    initial_item_rating,
    level,
    new_item,
    new_skill_rating,
    outcome_score,
    starting_ratings,
    update_skills,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "src" / "koan" / "content"
DOC = ROOT / "docs" / "adaptive.md"
PLOT = ROOT / "docs" / "adaptive.png"
START = datetime(2025, 1, 6, 18, 0, tzinfo=UTC)
MIN_BANK = 60
# An exercise done within this window is not offered again (older ones may come back).
RECENT = timedelta(days=14)
BAND = (0.6, 0.9)
TARGET_SUCCESS = 0.75
CHECKPOINTS = (10, 25)
MARK_START = "<!-- bench:adaptive:start -->"
MARK_END = "<!-- bench:adaptive:end -->"

# ---- the hidden world -----------------------------------------------------------------------
# The world the brief describes: true abilities per skill, true item difficulties that differ
# from the authored levels by noise (0.5 logits per exercise), honest onboarding answers.
# A harsher world, used as a stress test (see docs/benchmarks.md), stretches and shifts the
# true scale and lets one learner in five misreport their experience:
#   --world TRUE_LEVEL_SPACING=1.1 --world TRUE_LEVEL_SHIFT=0.2 --world SELF_REPORT_ACCURACY=0.8
TRUE_LEVEL_SPACING = 1.0
TRUE_LEVEL_SHIFT = 0.0
TRUE_ITEM_NOISE = 0.5
EXPERIENCE_MIX = (("beginner", 0.45), ("intermediate", 0.35), ("advanced", 0.20))
GENERAL_ABILITY = {"beginner": -1.2, "intermediate": 0.2, "advanced": 1.5}
GENERAL_SPREAD = 0.6  # within one experience group
SKILL_DEVIATION = 0.5  # one learner's skills around their general ability
SELF_REPORT_ACCURACY = 1.0  # otherwise the learner reports a neighbouring group
IMPROVER_SHARE = 0.5
LEARNING_RATE = (0.02, 0.06)  # logits gained per exercise on its main skill (half on others)
WORLD_KNOBS = (
    "TRUE_LEVEL_SPACING",
    "TRUE_LEVEL_SHIFT",
    "TRUE_ITEM_NOISE",
    "GENERAL_SPREAD",
    "SKILL_DEVIATION",
    "SELF_REPORT_ACCURACY",
    "IMPROVER_SHARE",
)

PYTHON_SKILLS = [
    "variables",
    "conditionals",
    "loops",
    "strings",
    "lists",
    "dictionaries",
    "sets",
    "tuples",
    "functions",
    "recursion",
    "sorting-searching",
    "classes",
    "error-handling",
    "comprehensions",
    "generators",
    "algorithms",
    "math",
    "closures",
    "higher-order-functions",
]
JAVASCRIPT_SKILLS = [
    "variables",
    "conditionals",
    "loops",
    "strings",
    "arrays",
    "objects",
    "sets",
    "functions",
    "recursion",
    "sorting-searching",
    "classes",
    "error-handling",
    "algorithms",
    "math",
    "closures",
    "higher-order-functions",
]
# Skills that tend to appear at higher levels, so the synthetic bank has a realistic shape.
ADVANCED_SKILLS = {
    "recursion",
    "sorting-searching",
    "classes",
    "generators",
    "algorithms",
    "closures",
    "higher-order-functions",
    "comprehensions",
    "error-handling",
}


@dataclass
class Exercise:
    slug: str
    language: str
    difficulty: int
    skills: tuple[str, ...]
    true_difficulty: float = 0.0
    synthetic: bool = False


@dataclass
class Learner:
    index: int
    language: str
    reported: str
    true_ability: dict[str, float]
    learning_rate: float

    def chance(self, exercise: Exercise) -> float:
        ability = sum(self.true_ability[s] for s in exercise.skills) / len(exercise.skills)
        return 1.0 / (1.0 + math.exp(-(ability - exercise.true_difficulty)))

    def practise(self, exercise: Exercise) -> None:
        for i, skill in enumerate(exercise.skills):
            self.true_ability[skill] += self.learning_rate * (1.0 if i == 0 else 0.5)


def load_bank() -> list[Exercise]:
    """The authored exercises that exist right now (others may still be writing them)."""
    bank: list[Exercise] = []
    for path in sorted(CONTENT.glob("*/*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            bank.append(
                Exercise(
                    slug=str(data["slug"]),
                    language=str(data.get("language", path.parent.name)),
                    difficulty=int(data["difficulty"]),
                    skills=tuple(dict.fromkeys(str(s) for s in data["skills"])),
                )
            )
        except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
            continue  # a file being written right now; skip it
    return [e for e in bank if 1 <= e.difficulty <= 5 and e.skills]


def top_up(bank: list[Exercise], per_language: int, rng: random.Random) -> list[Exercise]:
    """Add synthetic exercises until each language has ``per_language``, filling thin levels."""
    out = list(bank)
    for language, vocabulary in (("python", PYTHON_SKILLS), ("javascript", JAVASCRIPT_SKILLS)):
        have = [e for e in out if e.language == language]
        counts = {lvl: sum(1 for e in have if e.difficulty == lvl) for lvl in range(1, 6)}
        for n in range(per_language - len(have)):
            difficulty = min(counts, key=lambda lvl: (counts[lvl], lvl))
            counts[difficulty] += 1
            pool = [
                s for s in vocabulary if (s in ADVANCED_SKILLS) == (difficulty >= 3)
            ] or vocabulary
            main = rng.choice(pool)
            extra = rng.sample([s for s in vocabulary if s != main], rng.choice((0, 1, 1, 2)))
            out.append(
                Exercise(
                    slug=f"synthetic-{language}-{n}",
                    language=language,
                    difficulty=difficulty,
                    skills=(main, *extra),
                    synthetic=True,
                )
            )
    return out


def hide_truth(bank: list[Exercise], rng: random.Random) -> None:
    for e in bank:
        e.true_difficulty = (
            TRUE_LEVEL_SPACING * (e.difficulty - 3)
            + TRUE_LEVEL_SHIFT
            + rng.gauss(0, TRUE_ITEM_NOISE)
        )


def make_learner(index: int, seed: int, languages: Sequence[str], skills: set[str]) -> Learner:
    rng = random.Random(f"{seed}-learner-{index}")
    groups = [g for g, _ in EXPERIENCE_MIX]
    group = rng.choices(groups, weights=[w for _, w in EXPERIENCE_MIX])[0]
    reported = group
    if rng.random() > SELF_REPORT_ACCURACY:
        i = groups.index(group)
        reported = groups[max(0, min(2, i + rng.choice((-1, 1))))]
    general = rng.gauss(GENERAL_ABILITY[group], GENERAL_SPREAD)
    true_ability = {s: general + rng.gauss(0, SKILL_DEVIATION) for s in sorted(skills)}
    rate = rng.uniform(*LEARNING_RATE) if rng.random() < IMPROVER_SHARE else 0.0
    return Learner(index, rng.choice(list(languages)), reported, true_ability, rate)


# ---- the two methods ------------------------------------------------------------------------


@dataclass
class Trace:
    """What happened to one method, indexed by how many exercises a learner had done."""

    chances: list[list[float]] = field(default_factory=list)  # true P(success) of each item
    practised: list[list[float]] = field(default_factory=list)  # errors on skills practised
    every_skill: list[list[float]] = field(default_factory=list)  # errors on all skills
    general: list[list[float]] = field(default_factory=list)  # error on mean ability
    # Staircase only: (step, level, true ability) on practised skills, for the best-case reading.
    levels: list[tuple[int, int, float]] = field(default_factory=list)
    item_r: list[tuple[int, tuple[float, float]]] = field(default_factory=list)

    def step(self, k: int) -> None:
        while len(self.chances) <= k:
            for series in (self.chances, self.practised, self.every_skill, self.general):
                series.append([])


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


@dataclass
class KoanState:
    ratings: dict[str, SkillRating] = field(default_factory=dict)
    done: dict[str, datetime] = field(default_factory=dict)
    count: int = 0
    # The general rating as it stood once settled: what calibrates later learners' cold start.
    settled: SkillRating | None = None


@dataclass
class StairState:
    level: int
    ups: int = 0
    downs: int = 0
    seen: set[str] = field(default_factory=set)
    practised: set[str] = field(default_factory=set)
    count: int = 0


def staircase_pick(state: StairState, pool: list[Exercise], rng: random.Random) -> Exercise:
    levels = sorted({e.difficulty for e in pool}, key=lambda lvl: (abs(lvl - state.level), lvl))
    for lvl in levels:
        unseen = [e for e in pool if e.difficulty == lvl and e.slug not in state.seen]
        if unseen:
            return rng.choice(unseen)
    # Everything seen: repeat one at the current (or nearest) level.
    return rng.choice([e for e in pool if e.difficulty == levels[0]])


def staircase_step(state: StairState, passed: bool) -> None:
    if passed:
        state.ups, state.downs = state.ups + 1, 0
        if state.ups == 3:
            state.level, state.ups = min(5, state.level + 1), 0
    else:
        state.ups, state.downs = 0, state.downs + 1
        if state.downs == 2:
            state.level, state.downs = max(1, state.level - 1), 0


def staircase_start(reported: str, earlier: list[tuple[str, StairState]]) -> int:
    """Start where earlier learners with the same answer settled (the staircase's calibration)."""
    settled = sorted(s.level for r, s in earlier if r == reported and s.count >= 10)
    if len(settled) >= 2:
        return settled[len(settled) // 2]
    return int(level([cold_start_rating(reported)]))


def item_correlation(
    bank: list[Exercise], items_state: dict[str, ItemRating]
) -> tuple[float, float]:
    """Pearson r of estimated vs true difficulty, and of the corrections to the authored level.

    The second asks whether the engine learns what the authors got wrong: the estimate's move
    away from its authored prior against the item's true offset from its level's mean.
    """
    level_mean = {
        lvl: mean([e.true_difficulty for e in bank if e.difficulty == lvl])
        for lvl in {e.difficulty for e in bank}
    }
    whole = pearson([items_state[e.slug].rating for e in bank], [e.true_difficulty for e in bank])
    correction = pearson(
        [items_state[e.slug].rating - initial_item_rating(e.difficulty) for e in bank],
        [e.true_difficulty - level_mean[e.difficulty] for e in bank],
    )
    return whole, correction


def simulate(
    bank: list[Exercise],
    learners: int,
    items: int,
    seed: int,
    per_day: int,
    *,
    known_items: bool = False,
) -> tuple[Trace, Trace, float]:
    """Run both methods on the same learners; return their traces and the authored-level r.

    ``known_items`` hands Koan the true exercise difficulties (a ceiling study, not the engine).
    """
    languages = sorted({e.language for e in bank})
    by_language = {lang: [e for e in bank if e.language == lang] for lang in languages}
    skills_of = {
        lang: sorted({s for e in pool for s in e.skills}) for lang, pool in by_language.items()
    }
    all_skills = {s for e in bank for s in e.skills}
    # Two copies of every learner, one per method, with identical hidden starting points and
    # identical outcome random streams (common random numbers).
    koan_people = [make_learner(i, seed, languages, all_skills) for i in range(learners)]
    stair_people = [make_learner(i, seed, languages, all_skills) for i in range(learners)]
    koan_luck = [random.Random(f"{seed}-outcomes-{i}") for i in range(learners)]
    stair_luck = [random.Random(f"{seed}-outcomes-{i}") for i in range(learners)]
    koan_pick = [random.Random(f"{seed}-choice-{i}") for i in range(learners)]
    stair_pick = [random.Random(f"{seed}-stair-{i}") for i in range(learners)]
    arrival = [i // per_day for i in range(learners)]

    # The fairest single-number reading of a staircase level: the ability that passes that
    # level's exercises (their true mean difficulty, which only the bench knows) 3 times in 4.
    reading: dict[tuple[str, int], float] = {}
    for lang, pool in by_language.items():
        for lvl in range(1, 6):
            at = [e.true_difficulty for e in pool if e.difficulty == lvl]
            if at:
                reading[(lang, lvl)] = sum(at) / len(at) + math.log(3)

    item_ratings: dict[str, ItemRating] = {
        e.slug: ItemRating(e.true_difficulty, 0.05) if known_items else new_item(e.difficulty)
        for e in bank
    }
    koan_states: list[KoanState | None] = [None] * learners
    stair_states: list[StairState | None] = [None] * learners
    koan, stair = Trace(), Trace()
    total = learners * items
    marks = sorted({m for m in (1000, 2500, 5000, 10000) if m < total})
    koan.item_r.append((0, item_correlation(bank, item_ratings)))
    attempts = 0

    for day in range(arrival[-1] + items):
        now = START + timedelta(days=day)
        for i in range(learners):
            if not arrival[i] <= day < arrival[i] + items:
                continue
            person = koan_people[i]
            lang_skills = skills_of[person.language]
            if koan_states[i] is None:
                settled = [
                    s.settled
                    for j, s in enumerate(koan_states)
                    if s is not None
                    and s.settled is not None
                    and koan_people[j].reported == person.reported
                ]
                koan_states[i] = KoanState(ratings=starting_ratings(person.reported, settled))
                stair_states[i] = StairState(
                    level=staircase_start(
                        person.reported,
                        [
                            (stair_people[j].reported, s)
                            for j, s in enumerate(stair_states)
                            if s is not None
                        ],
                    )
                )
            state = koan_states[i]
            sstate = stair_states[i]
            assert state is not None
            assert sstate is not None
            k = state.count
            koan.step(k)
            stair.step(k)

            # Koan: the real engine chooses, the learner answers, the real engine updates.
            pool = by_language[person.language]
            candidates = [
                Candidate(
                    id=e.slug,
                    skills=e.skills,
                    item=item_ratings[e.slug],
                    recently_done=e.slug in state.done and now - state.done[e.slug] < RECENT,
                    last_done=state.done.get(e.slug),
                )
                for e in pool
            ]
            choice = choose_exercise(
                candidates, state.ratings, now=now, rng=koan_pick[i], experience=person.reported
            )
            exercise = next(e for e in pool if e.slug == choice.candidate.id)
            chance = person.chance(exercise)
            koan.chances[k].append(chance)
            passed = koan_luck[i].random() < chance
            changed, updated_item = update_skills(
                state.ratings,
                exercise.skills,
                item_ratings[exercise.slug],
                outcome_score(passed, attempts_before_pass=0, hints_used=0, skipped=False),
                now,
                experience=person.reported,
            )
            if not known_items:
                item_ratings[exercise.slug] = updated_item
            state.ratings.update(changed)
            state.done[exercise.slug] = now
            state.count += 1
            if state.count == SETTLED_ATTEMPTS:
                state.settled = state.ratings[GENERAL]
            person.practise(exercise)
            prior = new_skill_rating(state.ratings, person.reported)
            estimate = {s: state.ratings.get(s, prior).rating for s in lang_skills}
            koan.every_skill[k].extend(estimate[s] - person.true_ability[s] for s in lang_skills)
            koan.practised[k].extend(
                r.rating - person.true_ability[s]
                for s, r in state.ratings.items()
                if s != GENERAL and r.attempts > 0
            )
            koan.general[k].append(
                sum(estimate.values()) / len(lang_skills)
                - sum(person.true_ability[s] for s in lang_skills) / len(lang_skills)
            )
            attempts += 1
            if attempts in marks:
                koan.item_r.append((attempts, item_correlation(bank, item_ratings)))

            # Staircase on the same learner (its own copy), same outcome stream.
            person = stair_people[i]
            exercise = staircase_pick(sstate, pool, stair_pick[i])
            chance = person.chance(exercise)
            stair.chances[k].append(chance)
            passed = stair_luck[i].random() < chance
            staircase_step(sstate, passed)
            sstate.seen.add(exercise.slug)
            sstate.practised.update(exercise.skills)
            sstate.count += 1
            person.practise(exercise)
            guess = reading.get((person.language, sstate.level))
            if guess is None:  # a level with no exercises: read the nearest one
                near = min(
                    (lvl for lang, lvl in reading if lang == person.language),
                    key=lambda lvl: abs(lvl - sstate.level),
                )
                guess = reading[(person.language, near)]
            stair.every_skill[k].extend(guess - person.true_ability[s] for s in lang_skills)
            stair.practised[k].extend(guess - person.true_ability[s] for s in sstate.practised)
            stair.general[k].append(
                guess - sum(person.true_ability[s] for s in lang_skills) / len(lang_skills)
            )
            stair.levels.extend((k, sstate.level, person.true_ability[s]) for s in sstate.practised)
    koan.item_r.append((attempts, item_correlation(bank, item_ratings)))
    authored_r = pearson([e.difficulty for e in bank], [e.true_difficulty for e in bank])
    return koan, stair, authored_r


def oracle_in_band(bank: list[Exercise], learners: int, items: int, seed: int) -> float:
    """In-band share of a selector that knows every hidden truth: the bank's own ceiling."""
    languages = sorted({e.language for e in bank})
    all_skills = {s for e in bank for s in e.skills}
    hits = 0
    for i in range(learners):
        person = make_learner(i, seed, languages, all_skills)
        pool = [e for e in bank if e.language == person.language]
        done: dict[str, int] = {}
        for day in range(items):
            allowed = [e for e in pool if e.slug not in done or day - done[e.slug] >= RECENT.days]
            exercise = min(
                allowed,
                key=lambda e: abs(person.chance(e) - TARGET_SUCCESS) + (e.slug in done),
            )
            hits += BAND[0] <= person.chance(exercise) <= BAND[1]
            done[exercise.slug] = day
            person.practise(exercise)
    return hits / (learners * items)


def rmse(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else float("nan")


def best_case_staircase_rmse(trace: Trace, k: int) -> float:
    """Staircase RMSE on practised skills if each level were read as the best constant for it."""
    groups: dict[int, list[float]] = defaultdict(list)
    for step, lvl, ability in trace.levels:
        if step == k:
            groups[lvl].append(ability)
    errors: list[float] = []
    for values in groups.values():
        centre = sum(values) / len(values)
        errors.extend(v - centre for v in values)
    return rmse(errors)


def in_band(chances: Sequence[float]) -> float:
    return sum(1 for c in chances if BAND[0] <= c <= BAND[1]) / len(chances)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def report(koan: Trace, stair: Trace, authored_r: float, bank_note: str, setup: str) -> str:
    all_k = [c for step in koan.chances for c in step]
    all_s = [c for step in stair.chances for c in step]
    lines = [
        f"{setup} Bank: {bank_note}.",
        "",
        "| measure | Koan engine | staircase (3 up / 2 down) |",
        "|---|---|---|",
        f"| Exercises whose true success chance is in 0.6-0.9 | {in_band(all_k):.1%} | "
        f"{in_band(all_s):.1%} |",
        f"| Mean true success chance | {mean(all_k):.1%} | {mean(all_s):.1%} |",
    ]
    rows = (
        ("General-ability RMSE", koan.general, stair.general, False),
        ("Per-skill RMSE, skills practised so far,", koan.practised, stair.practised, True),
        (
            "Per-skill RMSE, every skill of the language,",
            koan.every_skill,
            stair.every_skill,
            False,
        ),
    )
    for name, ours, theirs, best_case in rows:
        for n in CHECKPOINTS:
            if n > len(ours):
                continue
            extra = (
                f" (best-case level reading {best_case_staircase_rmse(stair, n - 1):.2f})"
                if best_case
                else ""
            )
            lines.append(
                f"| {name} after {n} exercises (logits) | {rmse(ours[n - 1]):.2f} | "
                f"{rmse(theirs[n - 1]):.2f}{extra} |"
            )
    for attempts, (r, correction) in koan.item_r:
        lines.append(
            f"| Difficulty estimates vs truth after {attempts} attempts: Pearson r "
            f"(r of the correction to the authored level) | {r:.2f} ({correction:.2f}) | "
            f"{authored_r:.2f} (levels never change) |"
        )
    lines += ["", *verdicts(koan, stair, all_k)]
    return "\n".join(lines)


def verdicts(koan: Trace, stair: Trace, all_k: Sequence[float]) -> list[str]:
    """The targets from the brief, each marked met or not met."""
    share = in_band(all_k)
    out = [f"- In band at least 75%: {'met' if share >= 0.75 else 'NOT met'} ({share:.1%})."]
    reached = [n for n in CHECKPOINTS if n <= len(koan.general)]
    if reached:
        last = reached[-1]
        for name, ours, theirs in (
            ("general ability", koan.general, stair.general),
            ("per skill, skills practised", koan.practised, stair.practised),
        ):
            ratio = rmse(ours[last - 1]) / rmse(theirs[last - 1])
            verdict = "met" if ratio <= 0.5 else "NOT met"
            out.append(
                f"- RMSE after {last} exercises at most half the staircase's, {name}: "
                f"{verdict} (ratio {ratio:.2f})."
            )
    return out


def plot(koan: Trace, stair: Trace, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = list(range(1, len(koan.chances) + 1))
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4))
    left.plot(steps, [in_band(c) for c in koan.chances], label="Koan engine")
    left.plot(steps, [in_band(c) for c in stair.chances], label="staircase")
    left.set(xlabel="exercise number", ylabel="share with true success 0.6-0.9", ylim=(0, 1))
    left.set_title("Right difficulty")
    left.legend()
    middle.plot(steps, [rmse(e) for e in koan.general], "C0", label="Koan, general ability")
    middle.plot(steps, [rmse(e) for e in stair.general], "C1", label="staircase, general ability")
    middle.plot(steps, [rmse(e) for e in koan.practised], "C0--", label="Koan, per skill")
    middle.plot(steps, [rmse(e) for e in stair.practised], "C1--", label="staircase, per skill")
    middle.set(xlabel="exercise number", ylabel="RMSE (logits)", ylim=(0, None))
    middle.set_title("Ability estimate error")
    middle.legend()
    marks = [n for n, _ in koan.item_r]
    right.plot(marks, [r for _, (r, _) in koan.item_r], marker="o", label="difficulty")
    right.plot(marks, [c for _, (_, c) in koan.item_r], marker="o", label="correction to level")
    right.set(xlabel="attempts by all learners", ylabel="Pearson r with the truth", ylim=(0, 1))
    right.legend()
    right.set_title("Exercise difficulty estimates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_doc(table: str, command: str) -> None:
    block = f"{MARK_START}\n`{command}`\n\n{table}\n{MARK_END}"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Adaptive difficulty\n"
    if MARK_START in text and MARK_END in text:
        text = re.sub(
            re.escape(MARK_START) + ".*?" + re.escape(MARK_END),
            lambda _: block,
            text,
            flags=re.DOTALL,
        )
    else:
        text = text.rstrip("\n") + f"\n\n## Simulation results\n\n{block}\n"
    DOC.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Koan's adaptive engine against a staircase.")
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--items", type=int, default=25, help="exercises per learner")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=10, help="new learners per day")
    parser.add_argument("--synthetic", action="store_true", help="ignore the authored bank")
    parser.add_argument(
        "--ceiling", action="store_true", help="also measure what perfect knowledge would reach"
    )
    parser.add_argument(
        "--world",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"change one assumption of the hidden world, one of: {', '.join(WORLD_KNOBS)}",
    )
    parser.add_argument("--write", action="store_true", help="write docs/adaptive.md and .png")
    args = parser.parse_args(argv)
    for change in args.world:
        name, _, value = change.partition("=")
        if name not in WORLD_KNOBS:
            parser.error(f"--world: unknown assumption {name!r}")
        globals()[name] = float(value)
    began = time.perf_counter()

    rng = random.Random(f"{args.seed}-bank")
    authored = [] if args.synthetic else load_bank()
    # Learners must not run out of exercises near their level, so thin languages are topped up.
    per_language = max(MIN_BANK, 4 * args.items)
    bank = top_up(authored, per_language, rng)
    hide_truth(bank, rng)
    synthetic = sum(1 for e in bank if e.synthetic)
    if synthetic:
        bank_note = (
            f"{len(authored)} authored exercises plus {synthetic} synthetic ones of the same shape "
            f"(each language topped up to {per_language}, thinnest levels first)"
        )
    else:
        bank_note = f"{len(authored)} authored exercises"
    setup = (
        f"{args.learners} simulated learners, {args.per_day} joining per day, each doing "
        f"{args.items} exercises (one a day); seed {args.seed}"
        + (f"; world changed: {', '.join(args.world)}" if args.world else "")
        + "."
    )
    koan, stair, authored_r = simulate(bank, args.learners, args.items, args.seed, args.per_day)
    table = report(koan, stair, authored_r, bank_note, setup)
    if args.ceiling:
        known, _, _ = simulate(
            bank, args.learners, args.items, args.seed, args.per_day, known_items=True
        )
        oracle = oracle_in_band(bank, args.learners, args.items, args.seed)
        table += (
            "\n\nCeiling study (not the engine): the in-band share when Koan is handed the true "
            f"exercise difficulties is {in_band([c for s in known.chances for c in s]):.1%}; "
            "a selector that knows every hidden ability and difficulty reaches "
            f"{oracle:.1%} on this bank."
        )
    sys.stdout.write(table + "\n")
    sys.stdout.write(f"\n({time.perf_counter() - began:.1f} s)\n")
    if args.write:
        command = (
            f".venv/bin/python bench/adaptive.py --learners {args.learners} --items {args.items} "
            f"--seed {args.seed} --per-day {args.per_day}"
            + (" --synthetic" if args.synthetic else "")
            + (" --ceiling" if args.ceiling else "")
            + "".join(f" --world {change}" for change in args.world)
            + " --write"
        )
        write_doc(table, command)
        if plot(koan, stair, PLOT):
            sys.stdout.write(f"wrote {DOC} and {PLOT}\n")
        else:
            sys.stdout.write(f"wrote {DOC}; no plot: install matplotlib for {PLOT.name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
