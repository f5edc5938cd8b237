import os

import pytest

from tiny import make_synth


@pytest.fixture(scope="session", autouse=True)
def _prada_cache(tmp_path_factory):
    """Keep the tiny-random model and any built data out of the user's cache."""
    if "PRADA_CACHE" not in os.environ:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp("synth"))
