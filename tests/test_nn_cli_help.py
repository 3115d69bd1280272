"""``samtheory resnet`` for a newcomer (issue 14, §4): every flag shows its default, the synthetic
data flags are visible, the documented CPU smoke command parses, and an existing checkpoint
names ``--resume``. Parsing only, except the last test (which stops before training)."""

import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("flax")
from samtheory.nn import cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _help(command: str) -> str:
    sub = cli.build_parser()._subparsers._group_actions[0].choices[command]
    return sub.format_help()


@pytest.mark.parametrize("command", ["train", "switching-study", "interpolate"])
def test_every_option_with_a_value_shows_its_default(command):
    parser = cli.build_parser()._subparsers._group_actions[0].choices[command]
    text = _help(command)
    for action in parser._actions:
        if action.help == "==SUPPRESS==" or not action.option_strings or action.nargs == 0:
            continue
        if action.required:
            continue
        flag = action.option_strings[0]
        start = re.search(rf"\n  {re.escape(flag)}[ \n]", text).start() + 1  # its entry, not the usage line
        block = re.split(r"\n  -|\n\n", text[start + 2:])[0]
        assert "default:" in block, f"{command} {flag} does not show its default:\n{block}"


def test_synthetic_data_flags_are_documented():
    text = _help("train")
    assert "--synthetic-train" in text and "--synthetic-test" in text


def _smoke_commands(path: Path) -> list[list[str]]:
    text = path.read_text()
    return [shlex.split(line.strip())[2:] for line in text.splitlines()
            if line.strip().startswith("samtheory resnet train") and "--dataset synthetic" in line]


@pytest.mark.parametrize("doc", ["docs/resnet.md", "README.md"])
def test_the_documented_cpu_smoke_run_parses(doc):
    commands = _smoke_commands(REPO / doc)
    assert commands, f"{doc} documents no `samtheory resnet train --dataset synthetic ...` smoke run"
    args = cli.build_parser().parse_args(commands[0])
    assert args.dataset == "synthetic" and args.fast_compile and args.epochs == 1


def test_existing_checkpoint_error_names_the_resume_flag(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.msgpack").write_bytes(b"")
    code = cli.main(["train", "--dataset", "synthetic", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--resume" in err and "resume=True" not in err and str(out) in err
