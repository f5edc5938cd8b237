"""Build hook (the metadata lives in pyproject.toml): the run and experiment configs in configs/ ship in the wheel
as package data, prada/configs/*.yaml, beside the embedded default, so `prada run --config NAME` finds them in
an installed prada (prada.config.config_path)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"


class build_py_with_configs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads configs/ in the checkout
            return
        target = Path(self.build_lib) / "prada" / "configs"
        self.mkpath(str(target))
        for path in sorted(CONFIGS.glob("*.yaml")):
            if (ROOT / "src" / "prada" / "configs" / path.name).exists():
                raise SystemExit(f"configs/{path.name} would replace the package's own prada/configs/{path.name}")
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": build_py_with_configs})
