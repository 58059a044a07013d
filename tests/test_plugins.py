"""Attention plugins (attention_zoo.plugins) and the public mechanism checks (attention_zoo.testing).

Plugin modules are written into a temporary directory per test; an installed plugin is a
`.dist-info` directory with an `entry_points.txt` on sys.path. The fixture restores the registry,
the loaded plugins, sys.path and sys.modules after each test.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import attention_zoo
from attention_zoo import plugins, registry
from attention_zoo.plugins import PluginError, PluginWarning, load_plugins, require_plugins
from attention_zoo.testing import check_mechanism

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# A plugin module registering `name` as plain softmax attention over the valid keys.
PLUGIN_SOURCE = """
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attention_zoo import AttentionParams, register


@dataclass(frozen=True)
class Params(AttentionParams):
    temperature: float = 1.0


@register({name!r}, Params, summary="softmax attention with a temperature")
def attention(q, k, v, *, key_padding_mask=None, temperature):
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=q.shape[-1] ** -0.5 / temperature)
"""


@pytest.fixture(autouse=True)
def restore_registry(monkeypatch, tmp_path):
    saved = dict(registry._REGISTRY)
    loaded = dict(plugins._LOADED)
    autoloaded = registry._plugins_autoloaded
    path = list(sys.path)
    for var in (plugins.ENV_VAR, plugins.DISABLE_AUTOLOAD_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    registry._plugins_autoloaded = autoloaded
    sys.path[:] = path
    roots = (str(tmp_path), str(EXAMPLES))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(roots):
            del sys.modules[name]
    importlib.invalidate_caches()


def write_plugin(directory: Path, module: str, source: str) -> Path:
    path = directory / f"{module}.py"
    path.write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return path


def write_distribution(directory: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """A throw-away installed distribution: a .dist-info with metadata and entry points on sys.path."""
    info = directory / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[lra.attentions]\n" + "\n".join(lines) + "\n")
    (info / "top_level.txt").write_text(
        "\n".join(value.split(".")[0] for value in entry_points.values()) + "\n"
    )
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    importlib.invalidate_caches()


def first_use_of_the_registry() -> list[str]:
    registry._plugins_autoloaded = False
    return attention_zoo.names()


# --- loading ------------------------------------------------------------------------------------


def test_plugin_loads_by_module_name_from_the_working_directory(tmp_path, monkeypatch):
    path = write_plugin(tmp_path, "tempered_attn", PLUGIN_SOURCE.format(name="tempered"))
    monkeypatch.chdir(tmp_path)
    sys.path[:] = [p for p in sys.path if p not in ("", str(tmp_path))]
    (info,) = load_plugins(["tempered_attn"], entry_points=False, env=False)
    assert str(tmp_path) in sys.path
    assert info.module == "tempered_attn" and info.mechanisms == ("tempered",)
    assert info.loaded_via == "explicit" and info.distribution is None and info.version is None
    assert info.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.search_path == str(tmp_path.resolve())
    assert "tempered" in attention_zoo.names()
    mechanism = attention_zoo.get("tempered")
    assert mechanism.plugin == "tempered_attn" and attention_zoo.get("full").plugin is None
    # The plugin's mechanism works like a built-in, parameters validated and all.
    q = k = v = torch.randn(1, 2, 5, 4)
    torch.testing.assert_close(
        mechanism(q, k, v, params={"temperature": "1"}), F.scaled_dot_product_attention(q, k, v)
    )
    with pytest.raises(ValueError, match="valid parameters: temperature"):
        mechanism.params(window=3)
    # Loading again is a no-op: same record, nothing re-registered, no clash.
    assert load_plugins(["tempered_attn"], entry_points=False, env=False) == [info]
    assert [p.module for p in plugins.loaded_plugins()].count("tempered_attn") == 1
    assert info.to_dict() == {
        "module": "tempered_attn",
        "mechanisms": ["tempered"],
        "distribution": None,
        "version": None,
        "source_sha256": info.source_sha256,
        "loaded_via": "explicit",
    }
    assert info.describe() == f"tempered_attn (sha256 {info.source_sha256[:12]}): tempered"
    assert plugins.plugin_records() == [info.to_dict()]


def test_lra_plugins_variable_loads_at_first_registry_use(tmp_path, monkeypatch):
    write_plugin(tmp_path, "env_attn_a", PLUGIN_SOURCE.format(name="env_a"))
    write_plugin(tmp_path, "env_attn_b", PLUGIN_SOURCE.format(name="env_b"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LRA_PLUGINS", "env_attn_a, env_attn_b,")
    registry._plugins_autoloaded = False
    assert "env_attn_a" not in sys.modules
    assert attention_zoo.names()[-2:] == ["env_a", "env_b"]
    monkeypatch.setenv("LRA_PLUGINS", "env_attn_a,env_attn_missing")
    with pytest.raises(
        PluginError, match=r"^attention plugin 'env_attn_missing' \(from LRA_PLUGINS\) not found"
    ):
        first_use_of_the_registry()
    assert [(p.module, p.loaded_via) for p in plugins.loaded_plugins()][-2:] == [
        ("env_attn_a", "LRA_PLUGINS"),
        ("env_attn_b", "LRA_PLUGINS"),
    ]


def test_entry_point_of_an_installed_distribution_loads_lazily(tmp_path):
    """The example plugin, installed as a distribution declaring it in the lra.attentions group."""
    module_path = tmp_path / "windowed_landmarks.py"
    module_path.write_bytes((EXAMPLES / "windowed_landmarks.py").read_bytes())
    write_distribution(tmp_path, "toy-attn", "1.2.3", {"wl": "windowed_landmarks"})
    assert "windowed_landmarks" not in sys.modules
    assert "windowed_landmarks" in first_use_of_the_registry()
    assert "windowed_landmarks" in sys.modules
    (info,) = [p for p in plugins.loaded_plugins() if p.module == "windowed_landmarks"]
    assert (info.distribution, info.version, info.loaded_via) == ("toy-attn", "1.2.3", "entry point")
    assert info.source_sha256 == hashlib.sha256(module_path.read_bytes()).hexdigest()
    assert info.describe().startswith("windowed_landmarks (toy-attn 1.2.3, sha256 ")
    assert attention_zoo.get("windowed_landmarks").plugin == "windowed_landmarks"
    # A model layer runs it like a built-in.
    layer = attention_zoo.make("windowed_landmarks", dim=16, num_heads=2, params={"window": 2})
    assert layer(torch.randn(2, 9, 16)).shape == (2, 9, 16)


def test_autoload_of_entry_points_can_be_disabled(tmp_path, monkeypatch):
    write_plugin(tmp_path, "ep_attn", PLUGIN_SOURCE.format(name="ep"))
    write_distribution(tmp_path, "toy-ep", "0.1", {"ep": "ep_attn"})
    monkeypatch.setenv("LRA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "ep" not in first_use_of_the_registry()
    assert load_plugins() == []
    # Loaded by name, an installed module still records its distribution.
    (info,) = load_plugins(["ep_attn"], entry_points=False, env=False)
    assert (info.module, info.distribution, info.version, info.loaded_via) == (
        "ep_attn",
        "toy-ep",
        "0.1",
        "explicit",
    )
    # Autoload again: the entry point names a plugin already loaded, a no-op.
    monkeypatch.setenv("LRA_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert first_use_of_the_registry().count("ep") == 1


def test_child_process_started_elsewhere_loads_the_same_plugins_at_first_use(tmp_path, monkeypatch):
    """`child_env` carries --plugin modules to subprocesses; `import attention_zoo` itself loads none."""
    plugin_dir = tmp_path / "work"
    plugin_dir.mkdir()
    write_plugin(plugin_dir, "child_attn", PLUGIN_SOURCE.format(name="child"))
    monkeypatch.chdir(plugin_dir)
    load_plugins(["child_attn"], entry_points=False, env=False)
    env = plugins.child_env()
    assert env["LRA_PLUGINS"] == "child_attn"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(plugin_dir.resolve())
    script = (
        "import sys, attention_zoo\n"
        "assert 'child_attn' not in sys.modules\n"
        "print(attention_zoo.get('child').plugin, attention_zoo.plugins.plugin_records()[0]['loaded_via'])\n"
    )
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] += os.pathsep + repo
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["child_attn", "LRA_PLUGINS"]


# --- errors -------------------------------------------------------------------------------------


def test_plugin_failing_to_import_is_a_one_line_error_and_leaves_nothing_registered(tmp_path, monkeypatch):
    write_plugin(
        tmp_path, "half_attn", PLUGIN_SOURCE.format(name="half") + "\nraise RuntimeError('no GPU\\nfound')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as err:
        load_plugins(["half_attn"])
    assert str(err.value) == "attention plugin 'half_attn' failed to import: RuntimeError: no GPU found"
    assert "half" not in attention_zoo.names()
    with pytest.raises(
        PluginError, match=r"^attention plugin 'nope_attn' not found: no module 'nope_attn' on sys.path"
    ):
        load_plugins(["nope_attn"])


def test_broken_distribution_fails_every_registry_use_naming_it(tmp_path):
    write_plugin(tmp_path, "broken_attn", "import torch\nraise ImportError('needs torch>=9')\n")
    write_distribution(tmp_path, "toy-broken", "2.0", {"broken": "broken_attn"})
    message = (
        "attention plugin 'broken_attn' (entry point 'broken' of distribution toy-broken) failed to import: "
        "ImportError: needs torch>=9"
    )
    registry._plugins_autoloaded = False
    for _ in range(2):  # never silently ignored after the first failure
        with pytest.raises(PluginError) as err:
            attention_zoo.get("full")
        assert str(err.value) == message


def test_path_instead_of_module_name_says_which_name_to_use(tmp_path):
    with pytest.raises(PluginError, match=r"not a path: use 'myattn' with its directory on PYTHONPATH"):
        load_plugins([str(tmp_path / "myattn.py")])


def test_plugin_cannot_replace_a_builtin(tmp_path, monkeypatch):
    write_plugin(tmp_path, "evil_attn", PLUGIN_SOURCE.format(name="full"))
    monkeypatch.syspath_prepend(str(tmp_path))
    builtin = attention_zoo.get("full")
    with pytest.raises(PluginError) as err:
        load_plugins(["evil_attn"])
    assert str(err.value) == (
        "attention plugin 'evil_attn': attention 'full' from plugin evil_attn clashes with the built-in 'full' "
        "(attention_zoo.full); register it under another name"
    )
    assert attention_zoo.get("full") is builtin


def test_two_plugins_with_one_name_name_both_modules(tmp_path, monkeypatch):
    write_plugin(tmp_path, "first_attn", PLUGIN_SOURCE.format(name="shared_name"))
    write_plugin(tmp_path, "second_attn", PLUGIN_SOURCE.format(name="shared_name"))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins(["first_attn"])
    with pytest.raises(
        PluginError,
        match=r"'shared_name' from plugin second_attn clashes with 'shared_name' of plugin first_attn",
    ):
        load_plugins(["second_attn"])
    assert attention_zoo.get("shared_name").plugin == "first_attn"


def test_registering_a_builtin_name_directly_is_refused_naming_the_caller():
    with pytest.raises(
        registry.NameClashError,
        match=r"'topk' from plugin tests.test_plugins clashes with the built-in 'topk'",
    ):
        attention_zoo.register("topk", registry.AttentionParams, summary="again")(
            lambda q, k, v, *, key_padding_mask=None: q
        )


def test_plugin_registering_nothing_warns(tmp_path, monkeypatch):
    write_plugin(tmp_path, "empty_attn", "import attention_zoo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(
        PluginWarning, match=r"attention plugin 'empty_attn' registered no attention mechanism"
    ):
        (info,) = load_plugins(["empty_attn"])
    assert info.mechanisms == ()


# --- resume -------------------------------------------------------------------------------------


def test_resume_loads_trusted_recorded_plugins_or_says_what_to_install(tmp_path, monkeypatch):
    # Trusted: records may import what they name (untrusted, they never do: tests/test_integrity.py).
    monkeypatch.setenv("LRA_TRUST_RECORDED_PLUGINS", "1")
    write_plugin(tmp_path, "resumed_attn", PLUGIN_SOURCE.format(name="resumed"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (info,) = require_plugins(["resumed_attn"])
    assert info.mechanisms == ("resumed",)
    recorded = {"module": "gone_attn", "mechanisms": ["gone"], "distribution": "gone-attn", "version": "0.3"}
    with pytest.raises(PluginError) as err:
        require_plugins([info.to_dict(), recorded])
    assert str(err.value) == (
        "this run uses the attention plugin 'gone_attn', which cannot be imported: install gone-attn==0.3 or "
        "put the directory holding 'gone_attn' on PYTHONPATH (or run from that directory)"
    )
    with pytest.raises(
        PluginError, match=r"uses attention 'renamed' of plugin 'resumed_attn', which no longer"
    ):
        require_plugins([{**info.to_dict(), "mechanisms": ["renamed"]}])
    with pytest.warns(PluginWarning, match=r"'resumed_attn' changed since this run was recorded"):
        require_plugins([{**info.to_dict(), "source_sha256": "0" * 64}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        require_plugins([info.to_dict()])


def test_resume_reports_a_missing_dependency_of_the_plugin_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("LRA_TRUST_RECORDED_PLUGINS", "1")
    write_plugin(tmp_path, "needy_attn", "import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"'needy_attn' failed to import: .*'not_installed_dependency_xyz'"):
        require_plugins(["needy_attn"])


# --- check_mechanism ----------------------------------------------------------------------------

# Built-ins with parameter sets smaller than the test lengths; dense-score ones opt out of the memory check.
BUILTIN_CHECKS = {
    "full": ({}, True),
    "agent": ({"num_agents": 5}, False),
    "topk": ({"topk": 6}, True),
    "moba": ({"block_size": 4, "topk_blocks": 2}, True),
    "mita": ({"num_landmarks": 6, "topk": 5, "backend": "torch"}, False),
    "mita_route": ({"num_landmarks": 4, "topk": 6, "backend": "torch"}, False),
}


def dense_softmax(q, k, v, key_padding_mask, **_):
    """softmax(s q K^T) V over the valid keys, every score formed (fp64 reference)."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if key_padding_mask is not None:
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("name", list(BUILTIN_CHECKS))
def test_check_mechanism_passes_on_the_builtins(name):
    params, dense = BUILTIN_CHECKS[name]
    check_mechanism(name, params=params, allow_n_by_n=dense, lengths=(1, 7, 33))


def test_check_mechanism_compares_with_a_dense_reference():
    check_mechanism("full", reference=dense_softmax, allow_n_by_n=True, lengths=(1, 7, 33))
    check_mechanism(
        "topk", reference=dense_softmax, params={"topk": 300}, allow_n_by_n=True, lengths=(1, 7, 33)
    )
    with pytest.raises(
        AssertionError, match=r"check_mechanism\('topk\(topk=6\)'\): differs from the reference by"
    ):
        check_mechanism(
            "topk", reference=dense_softmax, params={"topk": 6}, allow_n_by_n=True, lengths=(1, 7, 33)
        )


def _register_fault(name, fn, **kwargs):
    attention_zoo.register(name, registry.AttentionParams, summary="a faulty mechanism", **kwargs)(fn)


def test_check_mechanism_catches_a_mechanism_that_leaks_padding():
    def mean_value_leak(q, k, v, *, key_padding_mask=None):
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        )
        return out + 1e-3 * v.mean(dim=2, keepdim=True)  # the mean runs over padded values too

    _register_fault("leaky", mean_value_leak)
    with pytest.raises(AssertionError, match=r"'leaky'\): random padding changes the valid outputs"):
        check_mechanism("leaky", allow_n_by_n=True)


def test_check_mechanism_catches_a_positional_mechanism_that_leaks_trailing_padding():
    def causal_over_all_keys(q, k, v, *, key_padding_mask=None):
        n = q.shape[2]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(n, n, dtype=torch.bool).tril().T)

    _register_fault("anticausal", causal_over_all_keys, padding_invariant=False)
    with pytest.raises(AssertionError, match=r"'anticausal'\): trailing padding changes the valid outputs"):
        check_mechanism("anticausal", allow_n_by_n=True)


def test_check_mechanism_catches_an_n_by_n_tensor():
    def dense_softmax_attention(q, k, v, *, key_padding_mask=None):
        return dense_softmax(q, k, v, key_padding_mask)

    _register_fault("dense", dense_softmax_attention)
    with pytest.raises(AssertionError, match=r"'dense'\): built a tensor of 16777216 elements at N=4096"):
        check_mechanism("dense")


def test_check_mechanism_catches_a_mechanism_that_is_random_outside_training():
    def noisy(q, k, v, *, key_padding_mask=None):
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask) + 1e-6 * torch.rand_like(q)

    _register_fault("noisy", noisy)
    with pytest.raises(AssertionError, match=r"'noisy'\): two identical calls gave different outputs"):
        check_mechanism("noisy", allow_n_by_n=True)


class _WrongBackward(torch.autograd.Function):
    """Softmax attention over the valid keys whose backward drops a term of the softmax Jacobian."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask):
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, -1)
        ctx.save_for_backward(q, k, v, probs)
        return probs @ v

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probs = ctx.saved_tensors
        grad_probs = grad @ v.transpose(-1, -2)
        grad_scores = probs * grad_probs / q.shape[-1] ** 0.5  # missing: - probs * sum(probs * grad_probs)
        return grad_scores @ k, grad_scores.transpose(-1, -2) @ q, probs.transpose(-1, -2) @ grad, None


def test_check_mechanism_catches_wrong_gradients():
    def wrong_gradients(q, k, v, *, key_padding_mask=None):
        return _WrongBackward.apply(q, k, v, key_padding_mask)

    _register_fault("wrong_grads", wrong_gradients)
    with pytest.raises(AssertionError, match=r"'wrong_grads'\): gradients do not match finite differences"):
        check_mechanism("wrong_grads", allow_n_by_n=True, lengths=(7,))


# --- the example plugin -------------------------------------------------------------------------


def test_example_plugin_passes_its_own_checks(monkeypatch):
    """examples/test_windowed_landmarks.py, what plugin authors copy, runs in this suite too."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("example_test", EXAMPLES / "test_windowed_landmarks.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for params in example.PARAMS:
        example.test_windowed_landmarks(params)
    assert attention_zoo.get("windowed_landmarks").plugin == "windowed_landmarks"
    # The example's reference is strict enough to notice a window one token too wide.
    too_wide = lambda q, k, v, mask, window, num_landmarks: example.dense_windowed_landmarks(
        q, k, v, mask, window=window + 1, num_landmarks=num_landmarks
    )
    with pytest.raises(AssertionError, match="differs from the reference"):
        check_mechanism("windowed_landmarks", reference=too_wide, params={"window": 2}, gradcheck=False)


def test_readme_shows_the_example_plugin_as_shipped():
    readme = (EXAMPLES.parent / "README.md").read_text()
    assert "```python\n" + (EXAMPLES / "windowed_landmarks.py").read_text() + "```" in readme
