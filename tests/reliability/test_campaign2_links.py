"""The second outside attack (issue 25), links and plots: prada never writes, deletes or chmods through a symbolic
link in its folders (one error naming it), and a plot appears complete or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.campaign2 import ScriptedTeacher, snapshot, teach_data
from tiny import tiny_config

# --- item 2: prada never writes, deletes or chmods through a link in its folders ---------------------------------


@pytest.fixture(scope="module")
def student(data_dir):
    """A tiny prada student (P-tuning prompt, full backbone, adversary) and its config, untrained."""
    from prada.train.student import build_student

    cfg = tiny_config(data_dir, "method=prada")
    model, tokenizer = build_student(cfg, num_domains=3)
    return model, tokenizer, cfg


@pytest.mark.parametrize("link", ["model", "student.json", "prompt/private.key"])
def test_saving_a_student_never_writes_through_a_link(student, tmp_path, link):
    import os

    from prada.errors import PradaError
    from prada.train.student import save_student

    model, tokenizer, cfg = student
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    if link == "model":  # another model's folder: save_pretrained deletes shard files it finds there
        target = elsewhere / "other-model"
        target.mkdir()
        for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "config.json"):
            (target / name).write_bytes(b"theirs")
    else:
        target = elsewhere / "private.key"
        target.write_bytes(b"secret")
        os.chmod(target, 0o600)
    (run / link).parent.mkdir(parents=True, exist_ok=True)
    (run / link).symlink_to(target)
    before = snapshot(elsewhere)
    with pytest.raises(PradaError, match="symbolic link") as ei:
        save_student(model, tokenizer, cfg, run)
    assert str(run / link) in str(ei.value)
    assert snapshot(elsewhere) == before
    assert link == "model" or (target.stat().st_mode & 0o777) == 0o600


def test_a_linked_teacher_cache_is_refused_and_its_target_untouched(tmp_path):
    from prada.errors import PradaError
    from prada.teacher.cache import cache_path
    from prada.teacher.zeroshot_cot import teach

    data = teach_data(tmp_path / "data", n=1)
    client = ScriptedTeacher(lambda p: "so it is.", lambda p: " ab.")
    target = tmp_path / "journal.txt"
    target.write_bytes(b"first line\nlast line without newline")
    link = cache_path(data, client.name)
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    with pytest.raises(PradaError, match="symbolic link") as ei:
        teach(data, client.name, client=client, progress=False)
    assert str(link) in str(ei.value)
    assert target.read_bytes() == b"first line\nlast line without newline"


def test_plots_are_never_written_through_a_link(tmp_path):
    import numpy as np

    from prada.errors import PradaError
    from prada.report.explain import plot_features

    target = tmp_path / "holiday.png"
    target.write_bytes(b"my photo")
    link = tmp_path / "report" / "features_pca.png"
    link.parent.mkdir()
    link.symlink_to(target)
    feats = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(PradaError, match="symbolic link"):
        plot_features({"trained": feats}, ["a", "a", "a", "b", "b", "b"], set(), link)
    assert target.read_bytes() == b"my photo"


# --- item 10: plots are written atomically ----------------------------------------------------------------------


def test_a_kill_while_saving_a_plot_leaves_no_png(tmp_path, monkeypatch):
    import matplotlib.figure
    import numpy as np

    from prada.report.explain import plot_features

    def killed_midway(self, fname, *args, **kwargs):
        if isinstance(fname, (str, Path)):
            open(fname, "wb").close()
        else:
            fname.write(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_midway)
    path = tmp_path / "features_pca.png"
    feats = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(KeyboardInterrupt):
        plot_features({"trained": feats}, ["a", "a", "a", "b", "b", "b"], set(), path)
    assert list(tmp_path.iterdir()) == []
