import subprocess
import sys

import pytest

PROBE = r"""
import resource, sys, torch
from prada.train.host_memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
for _ in range(10):  # warm-up: the heap grows and settles (in both modes)
    torch.ones(16 * 2**20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 * 2**20).sum()  # allocate, touch every page, free
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_tensors_are_reused_without_page_faults():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
        return int(out.split()[-1])

    default, tuned = faults("default"), faults("tuned")
    assert default > 10 * 10_000  # glibc maps and unmaps each 64 MB block: ~16k page faults every time
    assert tuned < default / 4  # the same block comes back already mapped (measured: 0 of ~164k)


def test_the_switch_is_read_by_the_command_never_by_the_library(monkeypatch):
    """PRADA_KEEP_FREED_MEMORY=off leaves glibc alone; a bad value names the variable; train() never touches it."""
    import inspect

    import prada.train.loop as loop
    from prada.errors import PradaError
    from prada.train import host_memory

    applied = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: applied.append(1) or True)
    monkeypatch.setenv(host_memory.ENV, "off")
    assert host_memory.configure_host_memory() is False and not applied
    monkeypatch.setenv(host_memory.ENV, "on")
    assert host_memory.configure_host_memory() is True and applied
    monkeypatch.setenv(host_memory.ENV, "sometimes")
    with pytest.raises(PradaError, match=host_memory.ENV):
        host_memory.configure_host_memory()
    assert "keep_freed_memory" not in inspect.getsource(loop) and "host_memory" not in inspect.getsource(loop)


@pytest.mark.parametrize("command", [["train", "--resume"], ["eval", "--run"]])
def test_prada_train_and_eval_apply_the_switch_once(monkeypatch, tmp_path, command):
    """Training's large temporaries and decoding's growing KV cache both come from malloc."""
    from prada import cli
    from prada.train import host_memory

    applied = []
    monkeypatch.setattr(host_memory, "configure_host_memory", lambda: applied.append(1))
    with pytest.raises(SystemExit):  # no such run: an error after the switch was applied
        cli.main([*command, str(tmp_path / "missing")])
    assert applied == [1]
