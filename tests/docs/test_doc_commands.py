"""Every `alignguard ...` line in the fenced bash blocks of README.md and docs/*.md runs as documented.

Fast commands run in the normal suite, one test per document; train / evaluate / mutate and the
benchmark scripts run in the slow test (every command of the document, in order).
"""

from __future__ import annotations

import pytest

from doc_commands import DOCS, ROOT, doc_commands, make_workspace, parse_commands, run_command

FAST_TIMEOUT_S = 240
SLOW_TIMEOUT_S = 1800

COMMANDS = {doc: doc_commands(doc) for doc in DOCS}
FAST_DOCS = [doc for doc, found in COMMANDS.items() if any(not c.slow for c in found)]
SLOW_DOCS = [doc for doc, found in COMMANDS.items() if any(c.slow for c in found)]


def _run_in_order(commands, workspace, timeout) -> tuple[list[str], list[str]]:
    failures, skipped = [], []
    for command in commands:
        if command.skip_reason:
            skipped.append(f"{command} (not run: {command.skip_reason})")
            continue
        problem = run_command(command, workspace, timeout)
        if problem:
            failures.append(problem)
    return failures, skipped


@pytest.mark.parametrize("doc", FAST_DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_fast_commands_of_each_doc_run_as_documented(doc, tmp_path):
    commands = [c for c in COMMANDS[doc] if not c.slow]
    failures, _ = _run_in_order(commands, make_workspace(tmp_path), FAST_TIMEOUT_S)
    assert not failures, f"{len(failures)} of {len(commands)} documented commands failed:\n\n" + "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("doc", SLOW_DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_command_of_each_doc_runs_in_order(doc, tmp_path):
    commands = COMMANDS[doc]
    failures, _ = _run_in_order(commands, make_workspace(tmp_path), SLOW_TIMEOUT_S)
    assert not failures, f"{len(failures)} of {len(commands)} documented commands failed:\n\n" + "\n\n".join(failures)


def test_the_docs_hold_commands_to_run():
    found = {str(doc.relative_to(ROOT)): len(commands) for doc, commands in COMMANDS.items()}
    assert found.get("README.md", 0) >= 5 and found.get("docs/tutorial.md", 0) >= 3, found


def test_parser_reads_bash_blocks_continuations_and_expectations():
    text = "\n".join([
        "```bash",
        "alignguard check a.yaml m.py   # exit 1: findings",
        "alignguard check b.yaml m.py   # misaligned: exit 1",
        "alignguard data convert --genome hg19.fa \\",
        "    --out ctcf/   # not run: needs the ENCODE-DREAM files",
        "pip install alignguard",
        "python benchmarks/graph_scaling.py --sizes 300",
        "alignguard explain noise.present | grep -c '#x'",
        "```",
        "```python",
        "alignguard check ignored.yaml in_python_block.py",
        "```",
        "```yaml",
        "alignguard train not.yaml shell.py",
        "```",
    ])
    commands = parse_commands(text, "doc.md")
    assert [(c.line, c.command, c.expected, c.skip_reason, c.slow) for c in commands] == [
        (2, "alignguard check a.yaml m.py", 1, None, False),
        (3, "alignguard check b.yaml m.py", 1, None, False),
        (4, "alignguard data convert --genome hg19.fa --out ctcf/", 0, "needs the ENCODE-DREAM files", False),
        (7, "python benchmarks/graph_scaling.py --sizes 300", 0, None, True),
        (8, "alignguard explain noise.present | grep -c '#x'", 0, None, False),
    ]
    assert parse_commands("```sh\nalignguard train s.yaml m.py\n```", "d.md")[0].slow


def test_a_command_that_exits_otherwise_is_reported(tmp_path):
    wrong = parse_commands("```bash\nalignguard explain no.such.check   # exit 0\n```", "doc.md")[0]
    right = parse_commands("```bash\nalignguard explain no.such.check   # exit 2\n```", "doc.md")[0]
    problem = run_command(wrong, tmp_path, FAST_TIMEOUT_S)
    assert problem and "exit 2, the doc expects 0" in problem and "doc.md:2" in problem
    assert run_command(right, tmp_path, FAST_TIMEOUT_S) is None
