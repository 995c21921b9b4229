#!/usr/bin/env python3
"""Move `chikyu_daq`'s flat modules into folders by concern and rewrite every reference to them.

Issue 11, run once by whoever merges the branches written in the flat layout, from the repo root:

    python tools/relayout.py            # git mv + rewrite imports, strings, docs, contracts
    python tools/relayout.py --check    # the same (a no-op when done), then imports, lint-imports,
                                        # ruff, mypy and pytest --collect-only must all pass
    python tools/relayout.py --table    # print the mapping as a Markdown table
    python tools/relayout.py --test-table   # print where each test file goes

It is deterministic and idempotent: a second run changes nothing, and a run after more
flat-layout work is merged moves what is new in the table and rewrites the new references.
Top-level modules it does not know stay where they are, with a warning; add them to `MOVES`.
Imports are rewritten in every text file of the tree, known or not. A moved file's
`Path(__file__).parent.parent` / `.parents[N]` is deepened once, when it moves, so it still names
the same folder (`rig/session.py` finds the repo's `config/reference.toml`).

The tests follow the tree: each file of `tests/chikyu_daq/` goes to the folder of what it tests
(`TEST_MOVES`), each new folder gets an `__init__.py` (pytest names test modules by package, so
equal basenames in two folders do not clash), `tests.chikyu_daq.X` imports and
`tests/chikyu_daq/X` paths are rewritten. Helpers used by one folder move beside their users; data
files move with the one test that reads them (`Path(__file__).with_name(...)` keeps working).
Unknown test files stay, with a warning. `--check` collects the tests before and after and
fails unless the same tests (by file basename and test id) are collected.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import subprocess
import sys
import tokenize
from collections import Counter
from pathlib import Path

ROOT_PKG = "chikyu_daq"

# Old flat module (under chikyu_daq) → new dotted path (under chikyu_daq), and why it goes there.
MOVES: list[tuple[str, str, str]] = [
    ("cli", "cli.root", "the root `chikyu-daq` app; each command beside it"),
    ("cmd_alarms", "cli.alarms", "`alarms list|ack|shelve|unshelve`"),
    ("cmd_fleet", "cli.fleet", "fleet replay and `sweep` glue"),
    ("cmd_hil", "cli.hil", "`hil run` and `hil synth`"),
    ("cmd_hil_serve", "cli.hil_serve", "`hil serve`"),
    ("cmd_import", "cli.import_export", "`import file|influx`, `export` (`import` is taken)"),
    ("cmd_poll", "cli.poll", "`poll`"),
    ("cmd_replay", "cli.replay", "`replay`"),
    ("cmd_runs", "cli.runs", "`runs list|show`"),
    ("cmd_spool", "cli.spool", "`spool check|show`"),
    ("config", "config.model", "the TOML model, loading and secrets"),
    ("config_checks", "config.checks", "cross-key checks"),
    ("config_rules", "config.rules", "value rules shared by the model and the checks"),
    ("config_summary", "config.summary", "what `config check` prints"),
    ("params", "config.params", "config → kernel parameters: config's last step"),
    ("daemon", "live.daemon", "`chikyu-daq run` under systemd"),
    ("pipeline", "live.pipeline", "drivers → hub → worker → sinks"),
    ("processor", "live.processor", "the processor inside the pipeline (replay reuses it)"),
    ("sdnotify", "live.sdnotify", "systemd notify protocol"),
    ("logs", "live.logs", "journald-aware logging of the running process"),
    ("outputs", "sinks.fanout", "every sink of a run behind one facade"),
    ("mqtt", "sinks.mqtt", "MQTT live feed and assay input"),
    ("assay", "sinks.assay", "lab assays arriving over MQTT"),
    ("influx", "sinks.influx.sink", "InfluxDB sink: spool drained by the uploader"),
    ("lineproto", "sinks.influx.lineproto", "line protocol encoding"),
    ("spool", "sinks.influx.spool", "the disk spool in front of InfluxDB"),
    ("spool_audit", "sinks.influx.spool_audit", "reading a spool without changing it"),
    ("recorder", "store.writer", "writes a run (the black box)"),
    ("recording", "store.reader", "reads a run"),
    ("durable", "store.durable", "fsync and health helpers (the spool reuses them)"),
    ("replay", "replay.engine", "a recorded run through the same processor"),
    ("report", "replay.report", "the one-page report PNG of a run"),
    ("importer", "fleet.importer", "other historians' data into runs (uses replay: not store)"),
    ("hil_session", "rig.session", "one scored HIL session"),
    ("demo", "rig.demo", "`chikyu-daq demo` on the emulated rig"),
    ("demo_alarms", "rig.demo_alarms", "the demo dashboard's alarm panel"),
]

# Flat modules that stay where they are, and why.
STAYS: dict[str, str] = {
    "supervise": "restart with backoff, per-step faults: a leaf that the live pipeline and the "
    "InfluxDB uploader (`Backoff`) both use, so below every folder",
}

# Test files under TEST_DIR → the folder of what they exercise (under TEST_DIR; "" stays).
TEST_DIR = "tests/chikyu_daq"
TEST_MOVES: dict[str, str] = {
    "test_cli_field.py": "cli",  # `hil serve` + `poll`, as typed
    "test_recorder_cli.py": "cli",  # `runs list|show`
    "test_config.py": "config",
    "test_config_hostile.py": "config",
    "test_params.py": "config",
    "malformed_configs.toml": "config",  # read by test_config only
    "hostile_values.toml": "config",  # read by test_config_hostile only
    "test_daemon.py": "live",
    "test_processor.py": "live",
    "test_storage_daemon.py": "live",  # the daemon on a disk that fills up
    "test_assay.py": "sinks",
    "test_mqtt.py": "sinks",
    "test_mqtt_faults.py": "sinks",
    "test_tls.py": "sinks",  # the InfluxDB and MQTT sinks over TLS
    "tls_pki.py": "sinks",  # used by test_tls only
    "test_influx.py": "sinks/influx",
    "test_lineproto.py": "sinks/influx",
    "test_spool.py": "sinks/influx",
    "test_spool_recovery.py": "sinks/influx",
    "test_recorder.py": "store",
    "test_storage_faults.py": "store",  # recorder and spool on failing disks: durable helpers
    "test_replay.py": "replay",
    "test_replay_stream.py": "replay",
    "test_report.py": "replay",
    "test_demo.py": "rig",
    "test_hil_session.py": "rig",
    "test_alarm_daemon.py": "alarms",  # the alarm lifecycle, through the daemon
    "test_alarm_manager.py": "alarms",
    "test_alarm_states.py": "alarms",
    "test_clock.py": "interfaces",
    "test_opcua.py": "interfaces",
    "test_prometheus.py": "interfaces",
    "test_fleet.py": "fleet",
    "test_fleet_ingest.py": "fleet",
    "test_import.py": "fleet",  # fleet.importer
    "fleet_fixtures.py": "fleet",  # used by test_fleet only
    # Stay: supervise.py stays a top-level module; the dashboards are config, not a module;
    # the shared helpers have users in several folders.
    "test_supervise.py": "",
    "test_dashboards.py": "",
    "spooling.py": "",  # sinks/influx and store
    "fsfaults.py": "",  # sinks/influx, store and live
}
TEST_KEEP = {"__init__.py", "conftest.py"}

# New packages and the docstring of their `__init__.py`.
PACKAGES: dict[str, str] = {
    "cli": "The `chikyu-daq` command line: `root` holds the app, one module per command beside it.",
    "config": "The installation config: model and loading, cross-key checks, rules, summary,\n"
    "kernel parameters.\n",
    "live": "The running daemon: pipeline, processor, systemd notify, logging.",
    "sinks": "Where results and raw samples go: the fan-out, MQTT, lab assays, InfluxDB.",
    "sinks.influx": "InfluxDB: line protocol, the disk spool, and the uploader that drains it.",
    "store": "The run store: the writer (black box), the reader, durable-file helpers.",
    "replay": "Replay a recorded run through the live processor, and its one-page report.",
    "rig": "The HIL session (emulated devices, plant truth, scoring) and the demo built on it.",
}

# What an `__init__.py` holds beyond its docstring. A console script installed before the move
# says `from chikyu_daq.cli import main`: it keeps working until the next install.
INIT_BODY: dict[str, str] = {
    "cli": "from chikyu_daq.cli.root import main\n\n__all__ = [\"main\"]\n",
}

# Packages directly under chikyu_daq, top to bottom: a layer may import only those below it.
# `|` would mark layers that must not import each other; none are needed today.
LAYERS = [
    "cli",
    "fleet",
    "rig",
    "replay",
    "live",
    "interfaces",
    "alarms",
    "sinks",
    "store",
    "config",
    "supervise",
]

CONTRACT = f'''[[tool.importlinter.contracts]]
name = "Inside the application, the command line on top, then each concern above what it uses"
type = "layers"
containers = ["{ROOT_PKG}"]
layers = [
{"".join(f'    "{name}",{chr(10)}' for name in LAYERS)}]
'''

# Files whose text is rewritten: every tracked or new file with one of these endings, or named so.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".service", ".yaml", ".yml", ".sh"}
TEXT_NAMES = {"Makefile", "run"}
SKIP_PREFIXES = ("tests/golden/", ".venv/")
SELF = "tools/relayout.py"
CHECK_DIRS = ("chikyu_daq", "drivers", "dsp", "hil")
LINE_LIMIT = 100  # ruff's; tests/ and benchmarks/ are exempt from it
LONG_LINES_OK = ("tests/", "benchmarks/")

NEW = {old: new for old, new, _ in MOVES}
# Old modules whose name is now a package (cli, config, replay): `chikyu_daq.config.X` is the
# old module's X unless X is one of the new package's submodules.
AMBIGUOUS = {old for old, new in NEW.items() if new.split(".")[0] == old}


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def submodules(pkg: str) -> set[str]:
    """Names directly inside new package `pkg`: the table's, and any added on disk later."""
    names = {new.split(".")[1] for new in NEW.values() if new.split(".")[0] == pkg}
    names |= {p.split(".")[1] for p in PACKAGES if p.startswith(pkg + ".")}
    folder = Path(ROOT_PKG, pkg)
    if folder.is_dir():
        names |= {p.stem for p in folder.glob("*.py")} | {
            p.name for p in folder.iterdir() if (p / "__init__.py").exists()
        }
    return names - {"__init__"}


def check_table() -> None:
    """The rewriting is only unambiguous if no old module defines a name its new package uses."""
    for old in sorted(AMBIGUOUS):
        src = Path(ROOT_PKG, old + ".py")
        if not src.exists():
            src = Path(ROOT_PKG, *NEW[old].split(".")).with_suffix(".py")
        tree = ast.parse(src.read_text())
        defined: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        clash = defined & submodules(old)
        if clash:
            sys.exit(f"relayout: {src} defines {sorted(clash)}, also modules of {old}/: rename one")


# ---------------------------------------------------------------------------------------------
# Moving


def create_init(init: Path, text: str) -> None:
    if not init.exists():
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_text(text)
        run("git", "add", str(init))
        print(f"created {init}")


def move_file(src: Path, dst: Path, levels: int) -> bool:
    """`git mv` src to dst, `levels` folders deeper, unless done already; True when moved now."""
    if not src.exists():
        return False
    if dst.exists():
        print(f"WARNING: both {src} and {dst} exist; left {src} alone (merge it by hand)")
        return False
    if run("git", "mv", str(src), str(dst), check=False).returncode != 0:
        os.replace(src, dst)  # not tracked yet
    print(f"moved {src} -> {dst}")
    deepen_moved(dst, levels)
    return True


def move_modules() -> set[str]:
    """`git mv` each known flat module; returns the old names moved in this run."""
    for pkg, doc in sorted(PACKAGES.items()):
        body = INIT_BODY.get(pkg)
        init_text = f'"""{doc}"""\n' + (f"\n{body}" if body else "")
        create_init(Path(ROOT_PKG, *pkg.split("."), "__init__.py"), init_text)
    moved = {
        old
        for old, new, _ in MOVES
        if move_file(
            Path(ROOT_PKG, old + ".py"),
            Path(ROOT_PKG, *new.split(".")).with_suffix(".py"),
            new.count("."),
        )
    }
    known = {old for old, _, _ in MOVES} | set(STAYS) | {"__init__", "__main__"}
    for path in sorted(Path(ROOT_PKG).glob("*.py")):
        if path.stem not in known:
            print(f"WARNING: {path} is not in tools/relayout.py MOVES; left in place")
    return moved


# `Path(__file__).resolve().parents[2]` or `Path(__file__).parent.parent`: a folder above a file.
PARENTS = re.compile(
    r"(?P<head>Path\(__file__\)(?:\.resolve\(\))?)"
    r"(?:\.parents\[(?P<n>\d+)\]|(?P<chain>(?:\.parent)+)(?!\w))"
)


def test_target(name: str) -> Path:
    return Path(TEST_DIR, *TEST_MOVES[name].split("/"), name)


def test_module(stem: str) -> str:
    return ".".join(test_target(stem + ".py").with_suffix("").parts)


def deepen(text: str, levels: int) -> str:
    """The same folder above a file moved `levels` deeper (the repo's `config/`, say)."""

    def repl(m: re.Match[str]) -> str:
        if m["n"] is not None:
            return f"{m['head']}.parents[{int(m['n']) + levels}]"
        return m["head"] + m["chain"] + ".parent" * levels

    return PARENTS.sub(repl, text)


def deepen_moved(path: Path, levels: int) -> None:
    """Run once, right after the move (a second run must not deepen again)."""
    if path.suffix == ".py" and levels:
        text = path.read_text()
        new = deepen(text, levels)
        if new != text:
            path.write_text(new)
            print(f"deepened the __file__ paths of {path}")


def move_tests() -> None:
    """`git mv` each known test file to the folder of what it tests (a package, for pytest)."""
    for folder in sorted({f for f in TEST_MOVES.values() if f}):
        parts = folder.split("/")
        for n in range(1, len(parts) + 1):
            create_init(Path(TEST_DIR, *parts[:n], "__init__.py"), "")
    for name, folder in TEST_MOVES.items():
        if folder:
            move_file(Path(TEST_DIR, name), test_target(name), len(folder.split("/")))
    for path in sorted(Path(TEST_DIR).iterdir()):
        if path.is_file() and path.name not in TEST_MOVES and path.name not in TEST_KEEP:
            print(f"WARNING: {path} is not in tools/relayout.py TEST_MOVES; left in place")


# ---------------------------------------------------------------------------------------------
# Rewriting

IDENT = r"[A-Za-z_]\w*"
# `from chikyu_daq import a, b as c` (one line, or parenthesised over several).
FROM_ROOT = re.compile(
    rf"^(?P<indent>[ \t]*)from[ \t]+{ROOT_PKG}[ \t]+import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#]*?)(?P<comment>[ \t]*#[^\n]*)?$",
    re.M,
)
# `from chikyu_daq.config import X` where config is both an old module and a new package.
FROM_AMBIGUOUS = re.compile(
    rf"^(?P<indent>[ \t]*)from[ \t]+{ROOT_PKG}\.(?P<mod>{IDENT})[ \t]+import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#]*?)(?P<comment>[ \t]*#[^\n]*)?$",
    re.M,
)
DOTTED = re.compile(rf"(?<![\w.]){ROOT_PKG}\.(?P<mod>{IDENT})(?P<rest>(?:\.{IDENT})*)")
PATH = re.compile(rf"(?<![\w./-]){ROOT_PKG}/(?P<mod>{IDENT})\.py\b")
MOVED_TESTS = sorted(name for name, folder in TEST_MOVES.items() if folder)
TEST_DOTTED = re.compile(
    rf"(?<![\w.]){re.escape(TEST_DIR.replace('/', '.'))}\."
    rf"(?P<mod>{'|'.join(Path(n).stem for n in MOVED_TESTS if n.endswith('.py'))})\b"
)
TEST_PATH = re.compile(
    rf"(?<![\w./-]){re.escape(TEST_DIR)}/(?P<name>{'|'.join(map(re.escape, MOVED_TESTS))})(?![\w.])"
)
TEST_REF = re.compile(rf"(?<![\w.]){re.escape(TEST_DIR.replace('/', '.'))}(?:\.{IDENT})+")
RELATIVE = re.compile(
    r"^(?P<indent>[ \t]*)from[ \t]+(?P<dots>\.+)(?P<mod>[\w.]*)[ \t]+import\b", re.M
)


def split_names(names: str) -> list[tuple[str, str | None]]:
    body = names.strip()
    if body.startswith("("):
        body = body[1:-1]
    body = re.sub(r"#[^\n]*", "", body).replace("\\\n", " ")
    out: list[tuple[str, str | None]] = []
    for part in body.split(","):
        words = part.split()
        if not words:
            continue
        out.append((words[0], words[2] if len(words) == 3 and words[1] == "as" else None))
    return out


def join_names(names: list[tuple[str, str | None]]) -> str:
    return ", ".join(f"{n} as {a}" if a and a != n else n for n, a in names)


def rewrite_from_root(m: re.Match[str], moved: set[str]) -> str:
    """`from chikyu_daq import a, b`: one statement per destination package."""
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for name, alias in split_names(m["names"]):
        new = NEW.get(name)
        if new is None or (name in AMBIGUOUS and name not in moved):
            groups.setdefault(ROOT_PKG, []).append((name, alias))
            continue
        parent, _, leaf = new.rpartition(".")
        groups.setdefault(f"{ROOT_PKG}.{parent}", []).append((leaf, alias or name))
    if list(groups) == [ROOT_PKG]:
        return m[0]
    lines = [f"{m['indent']}from {pkg} import {join_names(names)}" for pkg, names in groups.items()]
    return "\n".join(lines) + (m["comment"] or "")


def rewrite_from_ambiguous(m: re.Match[str]) -> str:
    """`from chikyu_daq.config import Config, checks`: old names to config.model, modules stay."""
    mod = m["mod"]
    if mod not in AMBIGUOUS:
        return m[0]
    subs = submodules(mod)
    names = split_names(m["names"])
    old = [(n, a) for n, a in names if n not in subs]
    if not old:
        return m[0]
    keep = [(n, a) for n, a in names if n in subs]
    lines = [f"{m['indent']}from {ROOT_PKG}.{NEW[mod]} import {join_names(old)}"]
    if keep:
        lines.append(f"{m['indent']}from {ROOT_PKG}.{mod} import {join_names(keep)}")
    return "\n".join(lines) + (m["comment"] or "")


def rewrite_dotted(m: re.Match[str], text: str, moved: set[str]) -> str:
    mod, rest = m["mod"], m["rest"]
    if mod not in NEW:
        return m[0]
    if mod in AMBIGUOUS:
        first = rest[1:].split(".")[0]
        if first in submodules(mod):
            return m[0]  # already the new package's module
        if not rest:
            after = text[m.end() : m.end() + 8]
            if re.match(r"[ \t]+import\b", after) or mod not in moved:
                return m[0]  # a from-import (done above) or the package itself
    return f"{ROOT_PKG}.{NEW[mod]}{rest}"


def rewrite_path(m: re.Match[str]) -> str:
    new = NEW.get(m["mod"])
    return m[0] if new is None else f"{ROOT_PKG}/{new.replace('.', '/')}.py"


def absolute_relative(path: Path, text: str) -> str:
    """Relative imports inside chikyu_daq become absolute (they would break on the move)."""
    package = list(path.parent.parts)

    def repl(m: re.Match[str]) -> str:
        up = len(m["dots"]) - 1
        base = package[: len(package) - up] if up else package
        target = ".".join([*base, *([m["mod"]] if m["mod"] else [])])
        return f"{m['indent']}from {target} import"

    return RELATIVE.sub(repl, text)


def rewrite_text(path: Path, text: str, moved: set[str]) -> str:
    if path.suffix == ".py":
        if path.parts[0] == ROOT_PKG:
            text = absolute_relative(path, text)
        text = FROM_ROOT.sub(lambda m: rewrite_from_root(m, moved), text)
        text = FROM_AMBIGUOUS.sub(rewrite_from_ambiguous, text)
    text = DOTTED.sub(lambda m: rewrite_dotted(m, text, moved), text)
    text = TEST_DOTTED.sub(lambda m: test_module(m["mod"]), text)
    text = TEST_PATH.sub(lambda m: test_target(m["name"]).as_posix(), text)
    return PATH.sub(rewrite_path, text)


def reflow(text: str) -> str:
    """Longer module paths can push docstring or comment lines past the limit: wrap those."""
    lines = text.split("\n")
    if all(len(line) <= LINE_LIMIT for line in lines):
        return text
    prose: set[int] = set()  # 0-based lines inside a multi-line string, or comment-only lines
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                starts_line = not tok.line[: tok.start[1]].strip()
                first = tok.start[0] - 1 if starts_line else tok.start[0]
                prose.update(range(first, tok.end[0] - 1))  # not the closing line
            elif tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
                prose.add(tok.start[0] - 1)
    except (tokenize.TokenError, SyntaxError):
        return text
    i = 0
    while i < len(lines):
        line = lines[i]
        cut = line.rfind(" ", 0, LINE_LIMIT + 1)
        indent = len(line) - len(line.lstrip())
        if i not in prose or len(line) <= LINE_LIMIT or cut <= indent:
            i += 1
            continue
        head, tail = line[:cut], line[cut + 1 :]
        lead = line[:indent] + ("# " if line.lstrip().startswith("#") else "")
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        body = nxt[len(lead) :]
        same_paragraph = (
            i + 1 in prose
            and nxt.startswith(lead)
            and bool(body.strip())
            and not body.startswith((" ", "-", "*", "|", "`", '"""'))
        )
        lines[i] = head
        if same_paragraph:
            lines[i + 1] = lead + tail + " " + nxt[len(lead) :]
        else:
            lines.insert(i + 1, lead + tail)
            prose = {n + 1 if n > i else n for n in prose} | {i + 1}
        i += 1
    return "\n".join(lines)


def tree_files() -> list[Path]:
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard").stdout.split()
    files = []
    for name in sorted(set(listed)):
        path = Path(name)
        if name == SELF or name.startswith(SKIP_PREFIXES) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            files.append(path)
    return files


def update_contracts(text: str) -> str:
    """Replace the flat-layout 'CLI on top' contract (a list of every module) by the layers."""
    blocks = re.split(r"(?m)^(?=\[)", text)
    out: list[str] = []
    placed = False
    for block in blocks:
        if block.startswith("[[tool.importlinter.contracts]]") and re.search(
            r'(?m)^name = "Inside the application', block
        ):
            if not placed:
                out.append(CONTRACT + ("\n" if block.endswith("\n\n") else ""))
                placed = True
            continue
        out.append(block)
    if not placed:
        out.append("\n" + CONTRACT)
    return "".join(out)


def rewrite_tree(moved: set[str]) -> list[Path]:
    changed = []
    for path in tree_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_text(path, text, moved)
        if path.suffix == ".py" and new != text and not str(path).startswith(LONG_LINES_OK):
            new = reflow(new)
        if path.name == "pyproject.toml" and path.parent == Path("."):
            new = update_contracts(new)
        if new != text:
            path.write_text(new)
            changed.append(path)
            print(f"rewrote {path}")
    py = [str(p) for p in changed if p.suffix == ".py"]
    if py:  # rewritten imports sort differently; let ruff's isort put them back in order
        run(tool("ruff"), "check", "--quiet", "--select", "I", "--fix", *py, check=False)
    return changed


# ---------------------------------------------------------------------------------------------
# Checking


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def leftovers() -> list[str]:
    """References to old paths the rewriting could not see (for example in f-strings)."""
    bad = []
    plain = {old for old in NEW if old not in AMBIGUOUS}
    pattern = re.compile(rf"(?<![\w./]){ROOT_PKG}[./](?:{'|'.join(sorted(plain))})\b(?!/)")
    for path in tree_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) or TEST_DOTTED.search(line) or TEST_PATH.search(line):
                bad.append(f"{path}:{n}: {line.strip()}")
    return bad


BESIDE = re.compile(
    r"Path\(__file__\)(?:\.resolve\(\))?\.with_name\(\s*[\"'](?P<name>[^\"']+)[\"']"
)


def missing_beside() -> list[str]:
    """Data files a test finds beside itself (`with_name`) must have moved with it."""
    bad = []
    for path in sorted(Path(TEST_DIR).rglob("*.py")):
        for m in BESIDE.finditer(path.read_text()):
            if not path.with_name(m["name"]).exists():
                bad.append(f"{path}: {m[0]}: no such file beside it")
    return bad


def collected(env: dict[str, str]) -> tuple[Counter[str] | None, str]:
    """Test ids pytest collects, a test file named by its basename (the move keeps those)."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    if proc.returncode != 0:
        return None, "\n".join(lines[-40:])
    ids: Counter[str] = Counter()
    for line in lines:
        file, sep, rest = line.partition("::")
        if sep and file.startswith(TEST_DIR + "/"):
            ids[Path(file).name + sep + rest] += 1
        elif sep:
            ids[line] += 1
    return ids, summary


# Run in a child: import every module, then make sure each `chikyu_daq.a.b.c` written anywhere
# (monkeypatch targets, `-m`, docs) names a module and, after it, an attribute that exists.
PROBE = """
import importlib, os, sys

def here(module):
    # an editable install's finder can serve an old module from another checkout
    return os.path.abspath(getattr(module, "__file__", None) or os.getcwd()).startswith(os.getcwd())

def probe(modules, refs):
    bad = 0
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:
            bad += 1
            print(f"import {name}: {e!r}")
    for ref in refs:
        parts = ref.split(".")
        obj, n = None, len(parts)
        while n and obj is None:
            try:
                obj = importlib.import_module(".".join(parts[:n]))
            except ImportError:
                n -= 1
        if not here(obj):
            bad += 1
            print(f"reference {ref}: {obj.__name__} is not this tree's ({obj.__file__})")
        elif n < len(parts) and not hasattr(obj, parts[n]):
            bad += 1
            print(f"reference {ref}: {'.'.join(parts[:n])} has no {parts[n]!r}")
    return bad > 0
"""


def check_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.getcwd()}


def check(before: Counter[str] | None) -> int:
    env = check_env()
    modules = sorted(
        ".".join(p.with_suffix("").parts).removesuffix(".__init__")
        for d in CHECK_DIRS
        for p in Path(d).rglob("*.py")
        if "__pycache__" not in p.parts and p.name != "__main__.py"
    )
    texts = [path.read_text() for path in tree_files()]
    refs = sorted({m[0] for text in texts for m in DOTTED.finditer(text)})
    refs += sorted({m[0] for text in texts for m in TEST_REF.finditer(text)})
    probe = PROBE + f"sys.exit(probe({modules!r}, {refs!r}))\n"
    steps = [
        ("import every module, resolve every dotted reference", [sys.executable, "-c", probe]),
        ("lint-imports", [tool("lint-imports")]),
        ("ruff check", [tool("ruff"), "check", "."]),
        ("mypy", [tool("mypy")]),
    ]
    failed = []
    found = [
        ("old paths", "old module paths left", leftovers()),
        ("data files", "data files missing beside their tests", missing_beside()),
    ]
    for label, what, bad in found:
        print(f"== {what}: {len(bad)}")
        for line in bad:
            print("  ", line)
        if bad:
            failed.append(label)
    for label, cmd in steps:
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
        tail = (proc.stdout + proc.stderr).strip().splitlines()
        print(f"== {label}: {'ok' if proc.returncode == 0 else 'FAILED'}")
        if proc.returncode != 0:
            failed.append(label)
            print("\n".join(tail[-40:]))
        elif tail:
            print("  ", tail[-1])
    after, summary = collected(env)
    if after is None:
        print(f"== pytest --collect-only: FAILED\n{summary}")
        failed.append("pytest --collect-only")
    elif before is not None and after != before:
        print(f"== pytest --collect-only: FAILED: {sum(before.values())} tests before the move, "
              f"{sum(after.values())} after")
        for name in sorted((before - after) + (after - before))[:40]:
            print(f"   {'lost' if before[name] > after[name] else 'new'}: {name}")
        failed.append("pytest --collect-only")
    else:
        was = "" if before is None else f"{sum(before.values())} before the move, "
        print(f"== pytest --collect-only: ok: {was}{sum(after.values())} after\n   {summary}")
    print("relayout check:", "FAILED: " + ", ".join(failed) if failed else "all green")
    return 1 if failed else 0


def table() -> str:
    cells = [(f"{old}.py", f"{new.replace('.', '/')}.py", why) for old, new, why in MOVES]
    cells += [(f"{old}.py", f"{old}.py (stays)", why) for old, why in STAYS.items()]
    cells = [(a, b, why.replace("|", "\\|")) for a, b, why in cells]  # a table cell's pipes
    rows = ["| before | after | why |", "|---|---|---|"]
    rows += [f"| `{a}` | `{b}` | {why} |" for a, b, why in cells]
    return "\n".join(rows)


def test_table() -> str:
    rows = ["| before | after |", "|---|---|"]
    rows += [
        f"| `{TEST_DIR}/{name}` | `{test_target(name).as_posix()}`{'' if f else ' (stays)'} |"
        for name, f in sorted(TEST_MOVES.items(), key=lambda item: (item[1], item[0]))
    ]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the tree afterwards")
    parser.add_argument("--table", action="store_true", help="print the mapping and exit")
    parser.add_argument("--test-table", action="store_true", help="print the tests' mapping")
    args = parser.parse_args()
    if args.table or args.test_table:
        print(table() if args.table else test_table())
        return 0
    if not (Path("pyproject.toml").exists() and Path(ROOT_PKG).is_dir()):
        sys.exit("relayout: run me from the repository root")
    check_table()
    before = None
    if args.check:
        before, summary = collected(check_env())
        print(f"== pytest --collect-only before the move: {summary}")
    moved = move_modules()
    move_tests()
    rewrite_tree(moved)
    return check(before) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
