"""Every subcommand answers --help; library errors become one clear line and exit code 2."""

import subprocess
import sys

import pytest

from prada.cli import COMMANDS, main


@pytest.mark.parametrize("name", [c[0] for c in COMMANDS])
def test_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([*name.split(), "--help"])
    assert e.value.code == 0
    assert "usage: prada" in capsys.readouterr().out


def test_bad_override_is_one_line_error(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "prada",
            "train",
            "--config",
            "configs/tiny.yaml",
            "adversary.lambda_mx=1",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "adversary.lambda_mx: unknown key" in r.stderr and "Traceback" not in r.stderr


def test_every_option_has_help_text():
    from prada.cli import build_parser

    parser = build_parser()
    missing = []

    def walk(p, path):
        for action in p._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):  # subcommands
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.help in (None, "") and action.dest != "help":
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(parser, "prada")
    assert not missing


def test_version(capsys):
    from prada import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"prada {__version__}"


def test_config_show_lists_every_key_with_default_and_docstring(capsys):
    import dataclasses

    from prada.config import RunConfig

    main(["config", "show", "--method", "ft-cot"])
    out = capsys.readouterr().out
    keys = [line.split(" = ")[0] for line in out.splitlines() if not line.startswith("    ")]
    expected = []
    for f in dataclasses.fields(RunConfig):
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        expected += (
            [f"{f.name}.{g.name}" for g in dataclasses.fields(sub)] if dataclasses.is_dataclass(sub) else [f.name]
        )
    assert keys == expected
    lines = out.splitlines()
    for i, line in enumerate(lines[:-1]):  # every key is followed by its (indented) docstring
        if not line.startswith("    "):
            assert lines[i + 1].startswith("    ") and lines[i + 1].strip(), line
    assert "method = ft-cot" in out and "train.backbone = ''  (method ft-cot: full)" in out
    assert "prompt.num_virtual_tokens = 20  (unused by method ft-cot)" in out
    assert "train.lr = 5e-05" in out and "    Backbone learning rate." in out


@pytest.mark.parametrize("extra", [["train.lr=0.1"], ["--config", "configs/tiny.yaml"], ["--out", "elsewhere"]])
def test_resume_with_overrides_is_an_error_not_ignored(extra, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "would be ignored" in err and extra[-1] in err
    assert not (tmp_path / "run").exists()


def test_teach_help_names_every_teacher_spelling(capsys):
    with pytest.raises(SystemExit):
        main(["teach", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    for spelling in ("openai:MODEL", "openai-chat:MODEL", "openai:MODEL?chat", "hf:PATH_OR_ID"):
        assert spelling in text, spelling
