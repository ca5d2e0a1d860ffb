#!/usr/bin/env python3
"""Checks that the dependencies of src/ point one way (run by scripts/test.sh).

Reads every `crate::…` and `super::…` path in src/ (pg_tests.rs and lib.rs,
which see everything, excepted), maps it to the module it names, and fails if

- a module imports from a layer above its own:
      pg  <  audit  <  revocation  <  identity  <  api_keys  <  postgrest, sandbox, authoring
  (`gucs` is beside `pg`, `upgrade` on top; `audit` imports only `pg` and
  `gucs`, so the binding reaches it only through SQL column defaults);
- `audit::sequencer` imports `audit::checkpoints`, `maintenance` or `worker`;
- the modules import each other in a circle. A folder's `mod.rs` declaring
  and initialising its own submodules is ownership, not a dependency.

Prints each violation with the file and line that causes it.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
LAYER = {"pg": 0, "gucs": 0, "audit": 1, "revocation": 2, "identity": 3,
         "api_keys": 4, "postgrest": 5, "sandbox": 5, "authoring": 5, "shared_memory": 5, "upgrade": 6}
FORBIDDEN = {"audit::sequencer": {"audit::checkpoints", "audit::maintenance", "audit::worker"}}
SKIP = {"lib.rs", "pg_tests.rs"}


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)


files = {module_of(p): p for p in SRC.rglob("*.rs") if p.name not in SKIP}
modules = set(files)


def resolve(segments):
    """The longest known module that a path's segments start with."""
    for n in range(len(segments), 0, -1):
        candidate = "::".join(segments[:n])
        if candidate in modules:
            return candidate
    return None


def expand(prefix, rest):
    """`a::{b, c::d}` and `a::b` to lists of segment lists."""
    rest = rest.strip()
    if rest.startswith("{"):
        inner, out, depth, item = rest[1:rest.rindex("}")], [], 0, ""
        for ch in inner + ",":
            if ch == "," and depth == 0:
                if item.strip():
                    out += expand(prefix, item.strip())
                item = ""
                continue
            depth += (ch == "{") - (ch == "}")
            item += ch
        return out
    head, _, tail = rest.partition("::")
    head = head.split(" as ")[0].strip()
    if head in ("self", "*", ""):
        return [prefix]
    if tail:
        return expand(prefix + [head], tail)
    return [prefix + [head]]


PATH = re.compile(r"\b(crate|super)::((?:[A-Za-z_][A-Za-z0-9_]*::)*(?:\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*))")

edges = {}  # (from, to) -> first "file:line"
for module, path in files.items():
    parent = module.rsplit("::", 1)[0].split("::") if "::" in module else []
    if path.name == "mod.rs":
        parent = module.split("::")[:-1]
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("//")[0]
        for root, rest in PATH.findall(code):
            base = [] if root == "crate" else parent
            for segments in expand(base, rest):
                target = resolve(segments)
                if target and target != module:
                    edges.setdefault((module, target), f"{path.relative_to(SRC.parent)}:{lineno}")

failures = []
for (a, b), where in sorted(edges.items()):
    top_a, top_b = a.split("::")[0], b.split("::")[0]
    if top_a != top_b and LAYER[top_b] > LAYER[top_a]:
        failures.append(f"{where}: {a} imports {b}, a layer above it")
    if top_a == "audit" and top_b not in ("audit", "pg", "gucs"):
        failures.append(f"{where}: {a} imports {b}; audit imports only pg and gucs")
    if b in FORBIDDEN.get(a, ()):
        failures.append(f"{where}: {a} must not import {b}")

# A folder owning its submodules is not a dependency.
graph = {}
for (a, b) in edges:
    if not b.startswith(a + "::"):
        graph.setdefault(a, set()).add(b)


def find_cycle():
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


cycle = find_cycle()
if cycle:
    steps = [f"{a} -> {b} ({edges[(a, b)]})" for a, b in zip(cycle, cycle[1:])]
    failures.append("import circle: " + "; ".join(steps))

for failure in failures:
    print(failure, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"layers: {len(modules)} modules, {len(edges)} imports, all pointing one way")
