"""--query is JMESPath: Cairn's engine (build/cairn-jp, the CLI's code) against python3-jmespath, the
implementation az itself uses, on generated expressions over generated documents; and --query end to end."""
import json
import math
import os
import random
import subprocess

import pytest

from conftest import CAIRN

JP = os.path.join(os.path.dirname(CAIRN), "cairn-jp")

try:
    import jmespath
    from jmespath import exceptions as jexc
except ImportError:  # scripts/install-deps.sh installs python3-jmespath
    jmespath = None

needs = pytest.mark.skipif(jmespath is None or not os.path.exists(JP),
                           reason="python3-jmespath or build/cairn-jp is missing")

KEYS = ["a", "b", "c", "name", "status", "n"]


def doc(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice([None, True, False, 0, 1, -2, 3.5, "x", "y", "", "Completed", "Failed", "a", 10, 2])
    if r < 0.65:
        return {k: doc(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(0, 4))}
    return [doc(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def lit(rng):
    return rng.choice(["`1`", "`2`", "`0`", "`-1`", "`3.5`", "'x'", "'Completed'", "`null`", "`true`", "`[1, 2]`",
                       "`{\"a\": 1}`", "'a'", "`\"y\"`"])


def expr(rng, depth=0):
    """A random expression in JMESPath's grammar (functions with their right arities)."""
    if depth > 3:
        return rng.choice(KEYS + ["@", lit(rng)])
    sub = lambda: expr(rng, depth + 1)
    key = lambda: rng.choice(KEYS)
    forms = [
        lambda: key(),
        lambda: f"{sub()}.{key()}",
        lambda: f"{sub()}[{rng.randint(-3, 3)}]",
        lambda: f"{sub()}[{rng.choice(['', '1', '-1'])}:{rng.choice(['', '2', '-1'])}{rng.choice(['', ':2', ':-1'])}]",
        lambda: f"{sub()}[*].{key()}",
        lambda: f"{sub()}[]",
        lambda: f"{sub()}.*",
        lambda: f"{sub()}[?{sub()} {rng.choice(['==', '!=', '<', '<=', '>', '>='])} {lit(rng)}]",
        lambda: f"{sub()}[?{sub()}]",
        lambda: f"{sub()} | {sub()}",
        lambda: f"{sub()} || {sub()}",
        lambda: f"{sub()} && {sub()}",
        lambda: f"!{sub()}",
        lambda: f"[{sub()}, {sub()}]",
        lambda: f"{{k1: {sub()}, k2: {sub()}}}",
        lambda: f"{sub()} {rng.choice(['==', '!=', '<', '>='])} {sub()}",
        lambda: lit(rng),
        lambda: "@",
        lambda: f"({sub()})",
        lambda: f"{rng.choice(['length', 'keys', 'values', 'type', 'to_string', 'to_number', 'to_array', 'abs', 'avg', 'sum', 'max', 'min', 'sort', 'reverse', 'ceil', 'floor', 'not_null'])}({sub()})",
        lambda: f"{rng.choice(['contains', 'starts_with', 'ends_with', 'join'])}({sub()}, {sub()})",
        lambda: f"{rng.choice(['sort_by', 'max_by', 'min_by'])}({sub()}, &{key()})",
        lambda: f"map(&{sub()}, {sub()})",
        # merge's later arguments are objects here: the reference checks only the first one's type (and
        # merges an empty list as nothing), Cairn checks them all, as the specification says.
        lambda: "merge(" + sub() + ", " + rng.choice(['`{}`', '`{"a": 1}`', '{a: b}']) + ")",
        lambda: f"not_null({sub()}, {sub()}, {lit(rng)})",
    ]
    return rng.choice(forms)()


def python_answer(e, d):
    try:
        return ("result", jmespath.search(e, d))
    except (jexc.LexerError, jexc.IncompleteExpressionError, jexc.ParseError):
        return ("error", "syntax")
    except jexc.JMESPathTypeError:
        return ("error", "invalid-type")
    except jexc.ArityError:
        return ("error", "invalid-arity")
    except jexc.UnknownFunctionError:
        return ("error", "unknown-function")
    except Exception as x:  # Python's own TypeError where the reference does not check (e.g. max of 1 and 'a')
        return ("error", "python:" + type(x).__name__)


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@needs
def test_cairn_and_python_jmespath_agree_on_generated_queries():
    rng = random.Random(20261201)
    cases = []
    for _ in range(6000):
        cases.append({"expression": expr(rng), "data": doc(rng)})
    p = subprocess.run([JP, "--lines"], input="\n".join(json.dumps(c) for c in cases) + "\n",
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    ours = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(ours) == len(cases)
    compared = results = 0
    mismatches = []
    for c, o in zip(cases, ours):
        kind, theirs = python_answer(c["expression"], c["data"])
        if kind == "error" and theirs.startswith("python:"):
            continue  # Python failed outside the reference's checks: no answer to compare with
        compared += 1
        if kind == "result":
            results += 1
            if "result" not in o or not same(o["result"], theirs):
                mismatches.append((c, o, theirs))
        elif o.get("error") != theirs:
            mismatches.append((c, o, theirs))
    assert compared > 5000 and results > 2000, (compared, results)
    assert not mismatches, "\n".join(f"{m[0]} -> cairn {m[1]} python {m[2]}" for m in mismatches[:15]) + \
        f"\n({len(mismatches)} of {compared})"


def test_query_is_jmespath_end_to_end(ws):
    ws.write("ok.yml", "command: 'true'\nenvironment: {image: python}\n")
    ws.write("bad.yml", "command: 'false'\nenvironment: {image: python}\n")
    for n, f in (("j1", "ok.yml"), ("j2", "bad.yml"), ("j3", "ok.yml")):
        ws.run("job", "create", "-f", f, "-n", n)
    for n, s in (("j1", "Completed"), ("j2", "Failed"), ("j3", "Completed")):
        ws.wait_status(n, s)
    q = lambda query, *more: ws.run("job", "list", "--query", query, *more).stdout
    assert json.loads(q("[?status=='Completed'].name | sort(@)")) == ["j1", "j3"]
    assert q("length(@)", "-o", "tsv") == "3\n"
    assert json.loads(q("sort_by([].{n: name, s: status}, &n)")) == [
        {"n": "j1", "s": "Completed"}, {"n": "j2", "s": "Failed"}, {"n": "j3", "s": "Completed"}]
    table = q("sort_by([], &name)[].{Job: name, State: status}", "-o", "table")
    assert table.splitlines()[0].split() == ["Job", "State"]  # the query's key order
    p = ws.run("job", "list", "--query", "[?status==", check=False)
    assert p.returncode == 2 and "invalid JMESPath expression" in p.stderr
