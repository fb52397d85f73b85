import sys
from pathlib import Path

# Tests import the package from the source tree even without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # tests/i18n_terms.py
