import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def lis_giulia(tmp_path_factory):
    """(datasets root, cache): lis cut to GIULIA and a few others, with keypoints and 64-px crops made once."""
    from helpers import lis_giulia_copy

    from realtime.manifest import Manifest, weights_dir
    from training.j2s_data import load_crops
    from training.keypoints import load_keypoints

    root = tmp_path_factory.mktemp("lis-giulia")
    lis = lis_giulia_copy(root)
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:  # the default cache layout, as the code under test finds it
        mp.setenv("FINGERSPELL_CACHE", str(cache))
        load_crops(lis, Manifest.load(weights_dir() / "lis-j2s").labels, size=64, progress=False)  # and keypoints
        for name in ("digits", "kaggle_asl"):
            load_keypoints(root / name, progress=False)
    return root, cache


@pytest.fixture(scope="session")
def asl_small(tmp_path_factory):
    """(datasets root, cache): the asl-letters recipe's datasets, two photos per label each, keypoints extracted."""
    from helpers import asl_copies

    from training.keypoints import load_keypoints

    root = asl_copies(tmp_path_factory.mktemp("asl-small"))
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINGERSPELL_CACHE", str(cache))
        for name in ("massey", "roboflow", "kaggle_asl", "digits"):
            load_keypoints(root / name, progress=False)
    return root, cache
