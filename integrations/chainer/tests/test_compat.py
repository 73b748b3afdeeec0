"""One test per compatibility shim, each in a fresh interpreter (Chainer loads once per process)."""

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from fastmoments_chainer import _compat


def _run(code):
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_sctypes_shim_as_strided_works_and_numpy_is_untouched():
    rc, out, err = _run("""
        import numpy as np
        had = hasattr(np, "sctypes")
        import fastmoments_chainer._compat as c
        import fastmoments_chainer
        import chainer, chainer.functions as F
        x = chainer.Variable(np.arange(12, dtype=np.float32))
        y = F.as_strided(x, (3, 3), (1, 1))     # overlapping windows
        F.sum(y).backward()
        print(y.array.tolist(), x.grad.tolist(), "sctypes" in c.APPLIED, had, hasattr(np, "sctypes"))
    """)
    assert rc == 0, err
    y, g, applied, had, has_after = _parse(out)
    ref = np.lib.stride_tricks.as_strided(np.arange(12.0), (3, 3), (8, 8))
    assert y == ref.tolist()
    want = np.zeros(12)
    np.add.at(want, np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]]), 1.0)
    assert g == want.tolist()
    assert applied == (not had)
    assert has_after == had  # NumPy itself is not patched


def _parse(out):
    import ast
    line = out.strip().splitlines()[-1]
    # "[..] [..] True False False": split on the top-level spaces between values
    parts, depth, cur = [], 0, ""
    for ch in line:
        depth += ch == "["
        depth -= ch == "]"
        if ch == " " and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [ast.literal_eval(p) for p in parts]


def test_numpy_float_shim_resize_images_matches_linear_interpolation():
    rc, out, err = _run("""
        import numpy as np
        had = hasattr(np, "float")
        import fastmoments_chainer._compat as c
        import fastmoments_chainer
        import chainer, chainer.functions as F
        x = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4)
        y = F.resize_images(x, (3, 7), align_corners=True).array
        print(y.ravel().tolist(), "numpy_float" in c.APPLIED, had, hasattr(np, "float"))
    """)
    assert rc == 0, err
    y, applied, had, has_after = _parse(out)
    # a linear ramp resized with align_corners is the same ramp sampled more finely
    rows = np.linspace(0, 1, 3)[:, None] * 4 + np.linspace(0, 3, 7)[None, :]
    np.testing.assert_allclose(y, rows.ravel(), rtol=1e-6)
    assert applied == (not had)
    assert has_after == had


def test_environment_check_shim_without_pkg_resources_and_numpy_distutils():
    # Simulate Python 3.12 / setuptools >= 82: both imports fail.
    block = 'import sys; sys.modules["pkg_resources"] = None; sys.modules["numpy.distutils"] = None\n'
    others = ("import sys, importlib.util as u\n"
              "where = u.find_spec('fastmoments_chainer').submodule_search_locations[0]\n"  # not imported
              "spec = u.spec_from_file_location('compat_only', where + '/_compat.py')\n"
              "c = u.module_from_spec(spec); spec.loader.exec_module(c)\n"
              "sys.meta_path.insert(0, c.ChainerCompatFinder(['sctypes', 'numpy_float']))\n"
              "import chainer\n")
    rc, _, err = _run(block + others)  # every shim but this one
    assert rc != 0 and ("pkg_resources" in err or "numpy.distutils" in err)  # the breakage is real
    rc, out, err = _run(block + """
import fastmoments_chainer._compat as c
import fastmoments_chainer
import chainer, chainer._environment_check as ec
print(chainer.__version__, "environment_check" in c.APPLIED, ec.check.__module__)
""")
    assert rc == 0, err
    version, applied, module = out.split()
    assert version == "7.8.1" and applied == "True" and module == "fastmoments_chainer._envcheck"


def test_envcheck_warns_on_unsupported_optional_dependency(monkeypatch):
    from fastmoments_chainer import _envcheck

    monkeypatch.setattr(_envcheck.importlib.metadata, "version",
                        lambda name: "14.0.0" if name == "cupy-fake" else (_ for _ in ()).throw(
                            _envcheck.importlib.metadata.PackageNotFoundError(name)))
    deps = [{"name": "CuPy", "packages": ["cupy-fake", "cupy-other"], "specifier": ">=7.7.0,<8.0.0", "help": "h"}]
    with pytest.warns(UserWarning, match="14.0.0 may not be compatible"):
        _envcheck._check_optional_dependencies(deps)


def test_cudnn_shim():
    no_cudnn = types.SimpleNamespace(available=True, cudnn_enabled=False)
    assert _compat.cudnn_shim(no_cudnn) is True
    assert no_cudnn.cudnn is None and no_cudnn.cudnn_enabled is False
    with_cudnn = types.SimpleNamespace(available=True, cudnn_enabled=True, cudnn=object())
    assert _compat.cudnn_shim(with_cudnn) is False and with_cudnn.cudnn_enabled is True
    no_gpu = types.SimpleNamespace(available=False)
    assert _compat.cudnn_shim(no_gpu) is False and not hasattr(no_gpu, "cudnn")


def test_nothing_is_touched_when_nothing_is_needed(monkeypatch):
    monkeypatch.setattr(_compat, "needed", lambda: {"sctypes": False, "numpy_float": False,
                                                     "environment_check": False})
    monkeypatch.setattr(_compat, "_installed", None)
    before = list(sys.meta_path)
    assert _compat.install() is None
    assert sys.meta_path == before
    finder = _compat.ChainerCompatFinder([])
    assert finder.find_spec("chainer.functions.array.as_strided") is None


def test_failed_chainer_import_gives_the_documented_error():
    # Importing Chainer before us fails on stacks that need the shims, and
    # leaves half-imported submodules behind: we must say what to do rather
    # than fail inside them.
    code = textwrap.dedent("""
        import warnings
        warnings.filterwarnings("ignore")
        try:
            import chainer
            print("IMPORTED")
        except Exception:
            pass
        try:
            import fastmoments_chainer
            print("NO ERROR")
        except RuntimeError as e:
            print("RuntimeError:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if "IMPORTED" in out.stdout:
        pytest.skip("Chainer imports without the shims on this stack")
    assert "RuntimeError: an earlier `import chainer` failed" in out.stdout, out.stdout + out.stderr
