"""No test asserts on wall time or on speed ratios (issue 14).

How fast something ran is a property of the machine and of whatever else it is doing, not of the code: CI on a busy
machine fails such assertions at random. Benchmarks *report* timings; tests check what the code computes. This test
parses every code cell of nbs/**/*.ipynb and every tests/*.py and flags, inside an assertion (`assert`, `test_eq`,
`test_close`, `test_ne`, `test_fail`, `pytest.approx`, `assert_close`, `assertLess`/`assertGreater`...):

- an ordering comparison (`<`, `>`, `<=`, `>=`) with an operand that names a timing quantity, and
- a ratio of two timing quantities compared by `test_close`/`approx` with a number literal (e.g. "a speed-up of ~1").

Left alone, on purpose: sign checks (`seconds >= 0`, `images_per_second > 0`: a duration is never negative, whatever
the machine), identities between reported numbers (`test_close(rate, n/train_seconds)`: the code's arithmetic, true
on any machine), the explicit allow-list `ALLOWED` below, and a line that says why it holds on any machine with a
`# structural: <reason>` comment (e.g. a total wall time is at least the part one process spent).
"""
import ast, json, re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMING = re.compile(r"seconds|_ms\b|latency|fastest|elapsed|perf_counter|time\.time|monotonic|process_time|per_second|img/s|"
                    r"speedup|speed_up|throughput|wall_|duration")
ASSERT_CALLS = {'test_eq', 'test_ne', 'test_close', 'test_fail', 'test_eq_type', 'approx', 'assert_close', 'isclose',
                'assertLess', 'assertLessEqual', 'assertGreater', 'assertGreaterEqual', 'assertAlmostEqual'}
ORDER_OPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
# Allowed orderings, each a regex over the whole comparison (ast.unparse) and the reason it is not a timing assertion.
ALLOWED = [
    (re.compile(r"^(\S+\['(min|median|p\d+|max)_ms'\]|(min|median|p\d+|max)_ms)"
                r"(\s*(<=|>=)\s*(\S+\['(min|median|p\d+|max)_ms'\]|(min|median|p\d+|max)_ms))+$"),
     "order statistics of one sample (min <= median <= p90 <= max) are ordered by definition, on any machine"),
    (re.compile(r"^\S*wall_seconds\S*\s*>=\s*\S*wall_seconds_this_process\S*$"),
     "a resumed run's wall time adds the earlier processes' time to this one's: a sum is at least its part"),
]
# A line may also opt out explicitly, with its reason, for an ordering that holds on any machine (a total is at least
# one of its parts, ...): `assert total_seconds >= part_seconds  # structural: the total includes this part`.
PRAGMA = re.compile(r"#\s*structural:\s*\S")


def _literal(node) -> bool:
    "A constant, or a set/list/tuple/dict of constants (e.g. a set of key names): never a measured time"
    if isinstance(node, ast.Constant): return True
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)): return all(map(_literal, node.elts))
    return isinstance(node, ast.Dict) and all(k is not None and _literal(k) for k in node.keys) and all(map(_literal, node.values))


def _timing(node) -> bool:
    return not _literal(node) and bool(TIMING.search(ast.unparse(node)))


def _is_zero(node) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 0


def _timing_ratio(node) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and _timing(n.left) and _timing(n.right)
               for n in ast.walk(node))


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ''


def _problems_in(node) -> list:
    "Why the assertion `node` (an `Assert` or an assertion call) depends on the machine's speed, one reason per finding"
    found = []
    for compare in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
        if not any(isinstance(op, ORDER_OPS) for op in compare.ops): continue
        operands = [compare.left, *compare.comparators]
        if not any(_timing(o) for o in operands): continue
        if len(operands) == 2 and any(_is_zero(o) for o in operands): continue  # a sign check: `x >= 0`, `0 < x`
        text = ast.unparse(compare)
        if any(pattern.match(text) for pattern, _ in ALLOWED): continue
        found.append(f"ordering of a timing quantity: {text}")
    closeness = {'test_close', 'approx', 'assert_close', 'isclose', 'assertAlmostEqual'}
    if isinstance(node, ast.Call) and _call_name(node) in closeness:
        args = list(node.args)
        if any(_timing_ratio(a) for a in args) and any(isinstance(a, ast.Constant) for a in args):
            found.append(f"speed ratio compared with a constant: {ast.unparse(node)}")
    for compare in (n for n in ast.walk(node) if isinstance(n, ast.Compare) and any(isinstance(op, ast.Eq) for op in n.ops)):
        operands = [compare.left, *compare.comparators]  # `ratio == pytest.approx(1.0, rel=0.3)`
        near_constant = any(isinstance(o, ast.Call) and _call_name(o) in closeness and any(isinstance(a, ast.Constant) for a in o.args)
                            for o in operands)
        if near_constant and any(_timing_ratio(o) for o in operands):
            found.append(f"speed ratio compared with a constant: {ast.unparse(compare)}")
    return found


def timing_assertions(source: str) -> list:
    "(line, reason) of each assertion in `source` (Python; notebook magics are blanked) that depends on timing"
    lines = [('#' + l) if l.lstrip().startswith(('%', '!')) else l for l in source.splitlines()]
    tree = ast.parse('\n'.join(lines))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) or isinstance(node, ast.Call) and _call_name(node) in ASSERT_CALLS:
            if any(PRAGMA.search(l) for l in lines[node.lineno - 1:node.end_lineno]): continue
            found += [(node.lineno, reason) for reason in _problems_in(node)]
    return sorted(set(found))


FILES = sorted(p.relative_to(REPO) for p in (*(REPO/'nbs').rglob('*.ipynb'), *(REPO/'tests').glob('*.py'))
               if '.ipynb_checkpoints' not in p.parts)


def code_of(path: Path) -> list:
    "(where, code) of each code cell of a notebook, or of the whole of a .py file"
    if path.suffix != ".ipynb": return [(str(path), (REPO/path).read_text())]
    cells = json.loads((REPO/path).read_text())["cells"]
    return [(f"{path} cell {i}", ''.join(c['source'])) for i, c in enumerate(cells) if c['cell_type'] == 'code']


def test_the_scanner_flags_timing_assertions_and_nothing_else():
    flagged = ["assert 0.05 <= seconds < 1, seconds",
               "assert all(ms > 0 for ms in fastest.values()) and 0.67 < fastest['first']/fastest['second'] < 1.5",
               "assert result['latency']['median_ms'] < 50",
               "assert time.perf_counter() - start < 5",
               "test_close(run['fast']['epoch_seconds']/run['slow']['epoch_seconds'], 1.0, eps=0.3)",
               "assert bench['inference']['images_per_second'] > 2000",
               "assert fast_seconds <= slow_seconds",
               "assert fast_seconds <= slow_seconds  # structural:",
               "assert fast['epoch_seconds']/slow['epoch_seconds'] == pytest.approx(1.0, rel=0.3)"]
    for line in flagged: assert timing_assertions(line), line
    allowed = ["assert math.isfinite(seconds) and seconds >= 0, seconds",
               "assert all(ms > 0 for ms in fastest.values())",
               "assert bench['latency']['p90_ms'] >= bench['latency']['median_ms'] >= bench['latency']['min_ms']",
               "test_close(run['images_per_second'], 38/run['train_seconds'], eps=1e-6)",
               "test_close(bench['train']['levers']['checkpoint_interval'], every['epoch_seconds']/run['epoch_seconds'])",
               "test_close(floor_seconds, 3.5, eps=0.1)",
               "assert len(samples) > 3",
               "assert written['floor']['student_forward_gflops'] == pytest.approx(2*0.1145, rel=1e-3)",
               "assert 'img/s' in lines[3]",
               "assert set(metrics) >= {'image_auroc', 'eval_seconds'}",
               "seconds = end - start\nif seconds > 1: print('slow')",
               "assert (whole.wall_seconds >= whole.wall_seconds_this_process).all()",
               "assert again['wall_seconds'] >= trained  # structural: the earlier process's training is part of it"]
    for line in allowed: assert not timing_assertions(line), line


@pytest.mark.parametrize('path', FILES, ids=str)
def test_no_assertion_depends_on_timing(path):
    found = []
    for where, code in code_of(path):
        try: found += [f"{where} line {line}: {reason}" for line, reason in timing_assertions(code)]
        except SyntaxError as e: found.append(f"{where}: cannot be parsed ({e.msg}, line {e.lineno}), so it cannot be checked")
    assert not found, '\n'.join(found) + \
        "\ntests must not assert on elapsed time or speed ratios: check counts, keys or orderings of a statistic instead"
