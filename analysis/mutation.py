"""Mutation testing of sweepnet's contracts with cosmic-ray, one target at a time.

    python analysis/mutation.py TARGET              # run one target (analysis/mutation/TARGET.toml)
    python analysis/mutation.py TARGET --list       # the mutants it would run, without running them
    python analysis/mutation.py all --label before  # every target; out/mutation-before-<t>.md
    python analysis/mutation.py TARGET --max 20 --budget-s 600   # fewer mutants, a time limit

Prints killed / survived / timeout and the score, and writes ``analysis/out/mutation-TARGET.md``
(``mutation-LABEL-TARGET.md`` with ``--label``) with every survivor: file:line, function,
operator and diff.

Why cosmic-ray, and why like this (see docs/mutation.md): every mutant is tested by a fresh
``python -m pytest`` process with a timeout, never by a process forked from one that already
runs JAX's threads. The mutants are applied to a scratch copy of the tree
(``$SWEEPNET_MUTATION_DIR/TARGET``, default ``/tmp/sweepnet-mutation/TARGET``), never to this
checkout, so a killed run cannot leave a mutant behind. cosmic-ray's session database
(``session.sqlite`` there) holds every mutant of the target's modules; mutants outside the
target's functions (and line patterns), of operators the target does not use, or past its
sample are marked skipped, as cosmic-ray's own filters do. A run that stops (``--budget-s``, a
kill) resumes where it was, unless the sources, the config or the options changed.

A target's config is a cosmic-ray config (``module-path``, ``timeout``, ``test-command``) plus a
``[cosmic-ray.sweepnet]`` table: ``functions`` (``[{file, name, lines}]``: a function's qualified
name, optionally only its lines matching the regex ``lines``), ``operators`` (regexes of
cosmic-ray operator names; default :data:`OPERATORS`) and ``sample`` (at most this many mutants,
chosen by a hash of each mutant's file, source line and operator: the same ones on every
machine, and mostly the same ones after unrelated edits).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import tomllib
from cosmic_ray import plugins
from cosmic_ray.ast import ast_nodes, get_ast_from_path
from cosmic_ray.ast.ast_query import ASTQuery
from cosmic_ray.mutating import mutate_and_test
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import (
    MutationSpec,
    TestOutcome,
    WorkerOutcome,
    WorkItem,
    WorkResult,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "analysis" / "mutation"
OUT = ROOT / "analysis" / "out"
# what the mutants' test processes see of this tree (tests/.xla-cache stays in the scratch copy)
COPY = ("src", "tests", "analysis", "sweeps", "pyproject.toml", "README.md")
IGNORE = shutil.ignore_patterns("__pycache__", ".xla-cache", ".pytest_cache", "out", "*.pyc")

# The default operators (regexes on cosmic-ray's names, matched in full): one replacement per
# arithmetic operator, the boundary (< vs <=) and negated comparisons, booleans, numbers, loops
# and exceptions. Left out: the other arithmetic swaps (x + y -> x ** y, x >> y, ...: ten per
# operator, rarely a plausible slip), RemoveDecorator (jax.custom_vjp, nn.compact,
# dataclass(frozen=True): a broken program, not a subtle one) and the variable operators (they
# need arguments per variable).
OPERATORS = (
    r"core/ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Mul|Mod_FloorDiv"
    r"|Pow_Mul|BitAnd_BitOr|BitOr_BitAnd|LShift_RShift|RShift_LShift|MatMult_Mul)",
    r"core/ReplaceComparisonOperator_(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Eq_NotEq|NotEq_Eq|Lt_GtE"
    r"|GtE_Lt|Gt_LtE|LtE_Gt|Is_IsNot|IsNot_Is)",
    r"core/ReplaceUnaryOperator_(USub_UAdd|Delete_Not|Invert_USub)",
    r"core/(AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd)",
    r"core/(ReplaceBreakWithContinue|ReplaceContinueWithBreak|NumberReplacer)",
    r"core/(ZeroIterationForLoop|ExceptionReplacer)",
)


@dataclasses.dataclass(frozen=True)
class Function:
    """Lines ``first..last`` of function ``name`` in ``file`` (only those matching ``lines``)."""

    file: str
    name: str
    first: int
    last: int
    lines: re.Pattern | None

    def holds(self, file: str, line: int, text: str) -> bool:
        return (file == self.file and self.first <= line <= self.last
                and (self.lines is None or bool(self.lines.search(text))))


@dataclasses.dataclass
class Target:
    name: str
    config: dict
    modules: list[str]
    test_command: str
    timeout: float
    functions: list[dict]
    operators: list[str]
    sample: int | None

    @classmethod
    def load(cls, name: str) -> Target:
        path = CONFIGS / f"{name}.toml"
        if not path.exists():
            known = ", ".join(sorted(targets()))
            raise SystemExit(f"mutation: no target {name!r} ({path} missing); targets: {known}")
        config = tomllib.loads(path.read_text())["cosmic-ray"]
        own = config.get("sweepnet", {})
        modules = config["module-path"]
        return cls(name, config, [modules] if isinstance(modules, str) else list(modules),
                   " ".join(config["test-command"].split()), float(config["timeout"]),
                   list(own.get("functions", [])), list(own.get("operators", OPERATORS)),
                   own.get("sample"))


def targets() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.toml"))


def function_ranges(root: Path, specs: list[dict]) -> list[Function]:
    """Each ``{file, name, lines}`` of a config as a :class:`Function` (line numbers of the
    scratch copy's source; ``name`` is qualified: ``Store.done_ids``, ``MLP.__call__``)."""
    out = []
    for s in specs:
        tree = ast.parse((root / s["file"]).read_text())
        found = {}

        def walk(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    q = prefix + child.name
                    found[q] = child  # noqa: B023  (walk is called at once, in this iteration)
                    walk(child, q + ".")

        walk(tree)
        if s["name"] not in found:
            raise SystemExit(f"mutation: {s['file']} has no function {s['name']!r}")
        node = found[s["name"]]
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        out.append(Function(s["file"], s["name"], first, node.end_lineno,
                            re.compile(s["lines"]) if s.get("lines") else None))
    return out


def _operators(allowed: list[str]):
    """``(name, operator)`` of every cosmic-ray operator whose name matches ``allowed`` (operators
    that need arguments have none here, so they give no mutants)."""
    pattern = re.compile("|".join(f"(?:{a})" for a in allowed))
    for name in plugins.operator_names():
        cls = plugins.get_operator(name)
        if pattern.fullmatch(name) and not cls.arguments():
            yield name, cls()


def work_items(modules: list[str], allowed: list[str]):
    """cosmic-ray's ``init``, for the allowed operators only (all ~300 walk a module each)."""
    ops = list(_operators(allowed))
    for module in modules:
        tree = get_ast_from_path(Path(module))
        nodes = list(ast_nodes(tree))
        for op_name, op in ops:
            positions = ((n, a, b) for n in nodes for a, b in op.mutation_positions(n))
            for occurrence, (node, start, end) in enumerate(positions):
                yield WorkItem.single(uuid.uuid4().hex, MutationSpec(
                    module_path=module, operator_name=op_name, occurrence=occurrence,
                    start_pos=start, end_pos=end,
                    definition_name=ASTQuery(node).get_definition_name()))


def annotations(path: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``(start, end)`` positions of every type annotation of a module: under ``from __future__
    import annotations`` they are never evaluated, so a mutant inside one is equivalent."""
    spans = []
    for node in ast.walk(ast.parse(Path(path).read_text())):
        for a in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if a is not None:
                spans.append(((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)))
    return spans


def _rank(m: MutationSpec, text: str, nth: int) -> str:
    """A mutant's place in the sample: a hash of what it changes, not of where (line numbers
    move with every edit above it)."""
    key = f"{m.module_path}|{text.strip()}|{m.operator_name}|{nth}"
    return hashlib.sha1(key.encode()).hexdigest()


def select(db: WorkDB, functions: list[Function], sample: int | None) -> tuple[int, int]:
    """Mark skipped every mutant outside ``functions`` or inside a type annotation, then all but
    ``sample`` of the rest. Returns ``(in the functions, selected)``."""
    sources: dict[str, list[str]] = {}
    typing: dict[str, list] = {}
    inside, outside = [], []
    seen: Counter = Counter()
    for item in sorted(db.work_items, key=lambda w: (str(w.mutations[0].module_path),
                                                      w.mutations[0].start_pos,
                                                      w.mutations[0].operator_name,
                                                      w.mutations[0].occurrence)):
        m = item.mutations[0]
        path = str(m.module_path)
        lines = sources.setdefault(path, Path(path).read_text().splitlines())
        line = m.start_pos[0]
        text = lines[line - 1]
        typed = typing.setdefault(path, annotations(path))
        if any(f.holds(path, line, text) for f in functions) \
                and not any(a <= tuple(m.start_pos) < b for a, b in typed):
            key = (path, text.strip(), m.operator_name)
            inside.append((_rank(m, text, seen[key]), item.job_id))
            seen[key] += 1
        else:
            outside.append(item.job_id)
    inside.sort()
    keep = inside if sample is None else inside[:sample]
    dropped = outside + [job for _, job in inside[len(keep):]]
    db.set_multiple_results(dropped, WorkResult(output="not selected",
                                                worker_outcome=WorkerOutcome.SKIPPED))
    return len(inside), len(keep)


def prepare(target: Target, scratch: Path, args) -> str:
    """Copy the tree into ``scratch`` (undoing any mutant a killed run left) and return the
    fingerprint of what the session database must match."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, scratch / name, ignore=IGNORE, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, scratch / name)
    h = hashlib.sha256()
    for module in sorted(target.modules):
        h.update((ROOT / module).read_bytes())
    h.update(json.dumps([target.config, args.max, sorted(target.operators)], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def classify(result: WorkResult) -> str:
    if result.worker_outcome == WorkerOutcome.SKIPPED:
        return "skipped"
    if result.worker_outcome != WorkerOutcome.NORMAL:
        return "error"
    if result.test_outcome == TestOutcome.KILLED:
        return "timeout" if result.output == "timeout" else "killed"
    return "survived" if result.test_outcome == TestOutcome.SURVIVED else "incompetent"


def _env(scratch: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch / "src")
    # `python` in a test command is this interpreter (the project's virtual environment)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def baseline(target: Target, scratch: Path) -> float:
    """Seconds the unmutated tree takes to pass the target's tests; exits if they fail."""
    t = time.perf_counter()
    proc = subprocess.run(target.test_command.split(), cwd=scratch, env=_env(scratch),
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SystemExit(f"mutation: {target.name}: the tests fail without a mutant "
                         f"(exit {proc.returncode}); nothing to measure\n{tail}")
    return seconds


def run(target: Target, args) -> dict:
    scratch = Path(os.environ.get("SWEEPNET_MUTATION_DIR", "/tmp/sweepnet-mutation")) / target.name
    fingerprint = prepare(target, scratch, args)
    db_path, stamp = scratch / "session.sqlite", scratch / "session.json"
    state = json.loads(stamp.read_text()) if stamp.exists() else {}
    cwd = os.getcwd()
    os.chdir(scratch)  # cosmic-ray mutates the module paths relative to the working directory
    try:
        if args.fresh or state.get("fingerprint") != fingerprint or not db_path.exists():
            db_path.unlink(missing_ok=True)
            with use_db(str(db_path)) as db:
                db.clear()
                db.add_work_items(work_items(target.modules, target.operators))
                functions = function_ranges(scratch, target.functions)
                n_in, n_sel = select(db, functions, args.max or target.sample)
            state = {"fingerprint": fingerprint, "in_functions": n_in, "selected": n_sel,
                     "seconds": 0.0}
            stamp.write_text(json.dumps(state))
        with use_db(str(db_path), WorkDB.Mode.open) as db:
            pending = sorted(db.pending_work_items,
                             key=lambda w: (str(w.mutations[0].module_path),
                                            w.mutations[0].start_pos, w.mutations[0].operator_name))
            print(f"mutation: {target.name}: {state['selected']} mutants selected of "
                  f"{state['in_functions']} in the target's functions; {len(pending)} to run",
                  flush=True)
            if args.list:
                for w in pending:
                    m = w.mutations[0]
                    print(f"  {m.module_path}:{m.start_pos[0]} {m.operator_name}")
                return {}
            if pending:
                if "baseline_s" not in state:
                    state["baseline_s"] = round(baseline(target, scratch), 1)
                    stamp.write_text(json.dumps(state))
                # a loaded machine slows every test run alike: time out at 3x the clean run
                timeout = max(target.timeout, 3 * state["baseline_s"])
                state["timeout_s"] = round(timeout, 1)
                print(f"mutation: {target.name}: tests pass unmutated in "
                      f"{state['baseline_s']:.0f} s; timeout {timeout:.0f} s", flush=True)
                os.environ.update(_env(scratch))  # cosmic-ray's test process inherits these
                t0 = time.perf_counter()
                for i, w in enumerate(pending, 1):
                    spent = state["seconds"] + time.perf_counter() - t0
                    if args.budget_s and spent > args.budget_s:
                        print(f"mutation: {target.name}: time budget spent ({spent:.0f} s); "
                              f"{len(pending) - i + 1} mutants not run (run again to go on)")
                        break
                    m, t = w.mutations[0], time.perf_counter()
                    result = mutate_and_test(w.mutations, target.test_command, timeout)
                    db.set_result(w.job_id, result)
                    print(f"  [{i}/{len(pending)}] {classify(result):>8} "
                          f"{time.perf_counter() - t:5.1f} s  {m.module_path}:{m.start_pos[0]} "
                          f"{m.operator_name.removeprefix('core/')}", flush=True)
                state["seconds"] += time.perf_counter() - t0
                stamp.write_text(json.dumps(state))
            done = db.completed_work_items
            left = len(db.pending_work_items)
        return summarize(target, scratch, state, done, left, args)
    finally:
        os.chdir(cwd)


def _diff(result: WorkResult) -> str:
    lines = (result.diff or "").splitlines()
    return "\n".join(x for x in lines if not x.startswith(("---", "+++")))


def summarize(target: Target, scratch: Path, state: dict, done, left: int, args) -> dict:
    counts = Counter(classify(r) for _, r in done)
    counts["not run"] = left
    tested = counts["killed"] + counts["timeout"] + counts["survived"]
    score = (counts["killed"] + counts["timeout"]) / tested if tested else float("nan")
    line = (f"{target.name}: killed {counts['killed']}, survived {counts['survived']}, "
            f"timeout {counts['timeout']}" + "".join(
                f", {k} {counts[k]}" for k in ("incompetent", "error", "not run") if counts[k])
            + f" of {state['selected']} selected ({state['in_functions']} in its functions); "
            f"score {score:.0%}; {state['seconds'] / 60:.1f} min")
    print(f"mutation: {line}", flush=True)
    sources = {}

    def where(m):
        path = str(m.module_path)
        lines = sources.setdefault(path, (scratch / path).read_text().splitlines())
        return f"{path}:{m.start_pos[0]}", lines[m.start_pos[0] - 1].strip()

    survivors = sorted(((w.mutations[0], r) for w, r in done if classify(r) == "survived"),
                       key=lambda mr: (str(mr[0].module_path), mr[0].start_pos))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    funcs = ", ".join(f"`{f['file'].removeprefix('src/sweepnet/')}:{f['name']}`"
                      + (f" (lines matching `{f['lines']}`)" if f.get("lines") else "")
                      for f in target.functions)
    md = [f"# Mutation testing: {target.name}", "",
          f"{datetime.date.today()}, commit {commit}; cosmic-ray, `python analysis/mutation.py "
          f"{target.name}`" + (f" (label {args.label})" if args.label else ""), "",
          f"- functions: {funcs}",
          f"- tests: `{target.test_command}` (clean run {state.get('baseline_s', '?')} s, "
          f"timeout {state.get('timeout_s', '?')} s)",
          f"- mutants: {state['in_functions']} in these functions with the target's operators, "
          f"{state['selected']} run" + (" (a deterministic sample)" if state["selected"]
                                        < state["in_functions"] else ""),
          f"- wall time: {state['seconds'] / 60:.1f} min", "",
          "| killed | survived | timeout | incompetent/error | not run | score |",
          "|---|---|---|---|---|---|",
          f"| {counts['killed']} | {counts['survived']} | {counts['timeout']} | "
          f"{counts['incompetent'] + counts['error']} | {left} | {score:.0%} |", "",
          "score = (killed + timeout) / (killed + timeout + survived)", "",
          f"## Survivors ({len(survivors)})", ""]
    for m, r in survivors:
        loc, _ = where(m)
        md += [f"### `{loc}` {m.operator_name.removeprefix('core/')} (in `{m.definition_name}`)",
               "", "```diff", _diff(r), "```", ""]
    errors = [(w.mutations[0], r) for w, r in done if classify(r) in ("error", "incompetent")]
    if errors:
        md += [f"## Incompetent or errors ({len(errors)})", ""]
        md += [f"- `{where(m)[0]}` {m.operator_name}: {(r.output or '').splitlines()[-1:]}"
               for m, r in errors]
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"mutation-{args.label}-{target.name}" if args.label else f"mutation-{target.name}"
    (OUT / f"{stem}.md").write_text("\n".join(md) + "\n")
    print(f"mutation: wrote {OUT / stem}.md", flush=True)
    return {"target": target.name, **{k: counts[k] for k in ("killed", "survived", "timeout")},
            "selected": state["selected"],
            "in_functions": state["in_functions"], "score": score,
            "minutes": state["seconds"] / 60}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", help=f"one of {', '.join(targets())}, or 'all'")
    p.add_argument("--label", default="", help="report as analysis/out/mutation-LABEL-TARGET.md")
    p.add_argument("--max", type=int, default=None,
                   help="run at most this many mutants (default: the config's sample)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting mutants after this many seconds (resumable)")
    p.add_argument("--fresh", action="store_true", help="forget the saved session")
    p.add_argument("--list", action="store_true", help="list the mutants to run, run none")
    args = p.parse_args(argv)
    names = targets() if args.target == "all" else [args.target]
    rows = [run(Target.load(n), args) for n in names]
    if len(rows) > 1 and not args.list:
        print("\n| target | killed | survived | timeout | selected | score | min |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['target']} | {r['killed']} | {r['survived']} | {r['timeout']} | "
                  f"{r['selected']} | {r['score']:.0%} | {r['minutes']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
