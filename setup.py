"""Build hook: the wheel carries the presets as package data (kvcalc/preset_data/*.json).

presets/ at the top of the repository stays the one source (the page loads it from
there); building copies its JSON files into the package, where kvcalc.presets finds them
through importlib.resources. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithPresets(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "kvcalc" / "preset_data"
        target.mkdir(parents=True, exist_ok=True)
        for src in sorted((ROOT / "presets").glob("*.json")):
            self.copy_file(str(src), str(target / src.name))


setup(cmdclass={"build_py": BuildPyWithPresets})
