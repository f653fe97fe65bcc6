"""Leak detection: scripted tutor replies that do and do not give the solution away."""

from __future__ import annotations

import pytest

from koan.llm import extract_code, is_leak, leak_score

SOLUTION = '''def rolling_max(values):
    """Return the running maximum of values."""
    result = []
    current = None
    for value in values:
        if current is None or value > current:
            current = value
        result.append(current)
    return result
'''

STARTER = '''def rolling_max(values):
    """Return the running maximum of values."""
    # your code here
    pass
'''

LEAKS = {
    "verbatim": f"Sure, here it is:\n\n```python\n{SOLUTION}```\n\nDoes that make sense?",
    "renamed variables": """Try this:
```py
def running_peak(xs):
    out = []
    best = None
    for x in xs:
        if best is None or x > best:
            best = x
        out.append(best)
    return out
```""",
    "reformatted with comments and types": '''```
def rolling_max( values: list[int] ) -> list[int] :
    """Different docstring."""
    result: list[int] = [ ]   # collect the answers
    current=None
    for value in values :
        if (current is None) or (value>current) :
            current=value
        result.append( current )
    return result
```''',
    "in a tilde fence": f"~~~text\n{SOLUTION}~~~",
    "in a fence tagged as another language": f"```javascript\n{SOLUTION}```",
    "without any fence": f"You could write it like this:\n\n{SOLUTION}\nThat's all.",
    "split over two fences": """First set things up:
```python
result = []
current = None
```
Then the loop:
```python
for value in values:
    if current is None or value > current:
        current = value
    result.append(current)
return result
```""",
    "with extra debugging lines": """```python
def rolling_max(values):
    result = []
    current = None
    for value in values:
        print("at", value)
        if current is None or value > current:
            current = value
        result.append(current)
    return result

print(rolling_max([1, 3, 2]))
```""",
}

NOT_LEAKS = {
    "one-line hint": (
        "Keep the biggest value so far in a variable, e.g. `current = max(current, value)`. "
        "What should it start as?"
    ),
    "concept with unrelated example": """A dictionary is handy for counting:
```python
counts = {}
for word in text.split():
    counts[word] = counts.get(word, 0) + 1
print(counts)
```
What do you need to remember from one item to the next in your exercise?""",
    "accumulator look-alike": """Here is the accumulator pattern on a different problem:
```python
def evens(numbers):
    found = []
    for n in numbers:
        if n % 2 == 0:
            found.append(n)
    return found
```""",
    "the starter code": f"Your starting point is:\n```python\n{STARTER}```\nWhat goes in the loop?",
    "a short fragment": "```python\nfor value in values:\n    ...\n```",
    "prose only": "Think about what the running maximum is after the very first element.",
}


@pytest.mark.parametrize("name", sorted(LEAKS))
def test_replies_that_give_the_solution_away_are_leaks(name: str) -> None:
    reply = LEAKS[name]

    assert leak_score(reply, SOLUTION, "python") >= 0.6
    assert is_leak(reply, SOLUTION, "python")


@pytest.mark.parametrize("name", sorted(NOT_LEAKS))
def test_guidance_is_not_a_leak(name: str) -> None:
    reply = NOT_LEAKS[name]

    assert leak_score(reply, SOLUTION, "python") < 0.4
    assert not is_leak(reply, SOLUTION, "python")


def test_verbatim_scores_one_and_prose_scores_zero() -> None:
    assert leak_score(LEAKS["verbatim"], SOLUTION, "python") == 1.0
    assert leak_score(NOT_LEAKS["prose only"], SOLUTION, "python") == 0.0


def test_starter_code_is_discounted() -> None:
    # Against a tiny solution the signature is a large share; the starter makes it public.
    solution = "def double_all(xs):\n    doubled = [x * 2 for x in xs]\n    return doubled\n"
    starter = "def double_all(xs):\n    return []\n"
    reply = "```python\ndef double_all(xs):\n    result = []\n    return result\n```"

    assert leak_score(reply, solution, "python", starter=starter) < leak_score(
        reply, solution, "python"
    )
    assert not is_leak(reply, solution, "python", starter=starter)


def test_threshold_is_configurable() -> None:
    reply = LEAKS["renamed variables"]

    assert is_leak(reply, SOLUTION, "python", threshold=0.99)
    assert not is_leak(NOT_LEAKS["accumulator look-alike"], SOLUTION, "python", threshold=0.6)


JS_SOLUTION = """function rollingMax(values) {
  const result = [];
  let current = -Infinity;
  for (const value of values) {
    current = Math.max(current, value);
    result.push(current);
  }
  return result;
}"""


def test_javascript_renamed_and_reformatted_is_a_leak() -> None:
    reply = """```js
function peaks(arr)
{
    var out = []   // results
    var best = -Infinity
    for (var x of arr) {
        best = Math.max(best, x)
        out.push(best)
    }
    return out
}
```"""

    assert is_leak(reply, JS_SOLUTION, "javascript")


def test_javascript_unrelated_example_is_not_a_leak() -> None:
    reply = """`reduce` folds an array into one value:
```js
const total = (nums) => nums.reduce((a, b) => a + b, 0);
console.log(total([1, 2, 3]));
```"""

    assert not is_leak(reply, JS_SOLUTION, "javascript")


def test_unknown_language_falls_back_to_tokens() -> None:
    solution = 'fn main() {\n    let total = items.iter().sum();\n    println!("{}", total);\n}'
    reply = '```rust\nfn main() {\n    let t = xs.iter().sum();\n    println!("{}", t);\n}\n```'

    assert is_leak(reply, solution, "rust")


def test_extract_code_finds_fences_indented_blocks_and_code_lines() -> None:
    reply = (
        "Intro sentence that is plain prose.\n\n"
        "```python\nx = 1\n```\n\n"
        "Some more words here for the reader.\n\n"
        "    indented = True\n    print(indented)\n\n"
        "Closing remark without code in it."
    )

    segments = extract_code(reply)

    assert "x = 1\n" in segments
    assert any("indented = True" in s and "print(indented)" in s for s in segments)
    assert not any("Intro sentence" in s or "Closing remark" in s for s in segments)
