"""The restricted FLAME loader: refuses code-running pickles, explains corrupt files, loads chumpy-style files."""

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from rsatalker_ros.face import load_head
from rsatalker_ros.face.flame_loader import safe_load_pickle

N_V = 40


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_refuses_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "evil": _RunsCode(marker)}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global .*system"):
        load_head(str(path))
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_Eval(), protocol=4))
    with pytest.raises(ValueError, match="unsafe"):
        safe_load_pickle(path)


def test_clear_errors_for_corrupt_or_wrong_files(tmp_path):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="generic_model.pkl"):
        load_head(str(path))
    good = pickle.dumps({"v_template": np.zeros((5, 3)), "f": np.zeros((1, 3), np.int64)}, protocol=2)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_head(str(path))
    path.write_bytes(good)
    with pytest.raises(ValueError, match="missing keys .*shapedirs"):
        load_head(str(path))
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="holds a list"):
        load_head(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        load_head(str(tmp_path / "missing.pkl"))
    with pytest.raises(ValueError, match="unknown head"):
        load_head("someone_else")


def _write_flame_like(path, rng, n_dirs=400):
    """A FLAME-shaped pickle with chumpy arrays, written with a fake chumpy that only exists while writing."""
    ch_mod, pkg = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy")

    class Ch:  # pickles like chumpy.ch.Ch: default object pickling, state dict with the array under 'x'
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_mod.Ch, pkg.ch = Ch, ch_mod
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch_mod
    try:
        v = rng.normal(0, 0.05, (N_V, 3))
        weights = rng.random((N_V, 5)) ** 4
        weights[:10] = [0, 0, 1, 0, 0]            # vertices 0-9 rigid with the jaw
        weights[10:20] = [0, 1, 0, 0, 0]          # 10-19 rigid with the neck
        weights /= weights.sum(1, keepdims=True)
        jreg = np.zeros((5, N_V))
        for k in range(5):
            jreg[k, rng.choice(N_V, 4, replace=False)] = 0.25
        model = {
            "v_template": Ch(v), "f": rng.integers(0, N_V, (60, 3)).astype(np.uint32),
            "shapedirs": Ch(rng.normal(0, 1e-3, (N_V, 3, n_dirs))), "posedirs": rng.normal(0, 1e-3, (N_V, 3, 36)),
            "J_regressor": scipy.sparse.csc_matrix(jreg), "weights": Ch(weights),
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
            "bs_style": "lbs", "bs_type": "lrotmin",
        }
        path.write_bytes(pickle.dumps(model, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return v, jreg, weights, model["shapedirs"].x


def test_flame_like_pickle_loads_and_skins(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "generic_model.pkl"
    v, jreg, weights, dirs = _write_flame_like(path, rng)
    assert "chumpy" not in sys.modules
    head = load_head(str(path))
    assert head.basis == "flame100" and head.layout.dim == 112 and head.n_vertices == N_V and head.n_shape == 300
    assert np.allclose(head.neutral().numpy(), v, atol=1e-6)
    expr = torch.zeros(1, 100)
    expr[0, 3] = 1.5
    out = head(expr, torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 6))[0].numpy()
    assert np.allclose(out, v + 1.5 * dirs[:, :, 303], atol=1e-6)
    # a jaw rotation moves the jaw-rigid vertices about the regressed jaw joint and leaves neck-rigid ones alone
    motion = torch.zeros(1, head.layout.dim)
    motion[0, head.layout.jaw.start] = 0.2
    posed = head.from_motion(motion)[0].numpy()
    jaw = jreg[2] @ v
    c, s = np.cos(0.2), np.sin(0.2)
    r = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    feat = np.concatenate([np.zeros(9), (r - np.eye(3)).ravel(), np.zeros(18)])
    corrected = v + np.einsum("vip,p->vi", head.posedirs.numpy().T.reshape(N_V, 3, 36), feat)
    assert np.allclose(posed[:10], jaw + (corrected[:10] - jaw) @ r.T, atol=1e-5)
    assert np.allclose(posed[10:20], corrected[10:20], atol=1e-6)
    for name in ("lips", "upper_lip", "lower_lip", "eyes", "upper_face", "face"):
        assert name in head.regions
    # the 50-coefficient basis takes the first 50 expression directions
    head50 = load_head(str(path), basis="flame50")
    assert head50.layout.dim == 62 and torch.equal(head50.exprdirs, head.exprdirs[:, :, :50])


def test_flame_masks_beside_the_model_set_regions(tmp_path):
    rng = np.random.default_rng(1)
    _write_flame_like(tmp_path / "generic_model.pkl", rng)
    masks = {"lips": np.arange(0, 12), "eye_region": np.arange(20, 26), "forehead": np.arange(30, 34),
             "face": np.arange(0, 36)}
    (tmp_path / "FLAME_masks.pkl").write_bytes(pickle.dumps(masks, protocol=2))
    head = load_head(str(tmp_path / "generic_model.pkl"))
    assert sorted(head.regions["lips"].tolist()) == list(range(12))
    assert set(head.regions["lower_lip"].tolist()) == set(range(10))   # the jaw-rigid lip vertices
    assert set(head.regions["upper_face"].tolist()) == set(range(20, 26)) | set(range(30, 34))


def test_too_few_directions_is_explained(tmp_path):
    _write_flame_like(tmp_path / "generic_model.pkl", np.random.default_rng(2), n_dirs=320)
    with pytest.raises(ValueError, match="320 directions"):
        load_head(str(tmp_path / "generic_model.pkl"))
