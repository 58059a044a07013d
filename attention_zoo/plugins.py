"""Attention plugins: mechanisms registered by modules outside this package.

A plugin is an importable module that registers one or more mechanisms with
`attention_zoo.register` when it is imported. Three ways load one:

* an installed distribution declares the module in the entry-point group ``lra.attentions``::

      [project.entry-points."lra.attentions"]
      myattn = "mypkg.myattn"

  and it is imported at the first use of the registry (`names()`, `get()`), not by
  ``import attention_zoo`` (``LRA_DISABLE_PLUGIN_AUTOLOAD=1`` turns this off, as in pytest);
* the environment variable ``LRA_PLUGINS=mod1,mod2``, read at the same moment (child processes
  inherit it, see `child_env`);
* `load_plugins(["mod1"])`, what ``--plugin MODULE`` calls. Modules are imported by name from
  ``sys.path``, which includes the working directory.

Reading never imports: a plugin that a run's `config.json` / `run_config.json` or a suite's
`suite.json` records is imported only when the user names it (the three ways above) or trusts the
records (``LRA_TRUST_RECORDED_PLUGINS=1``, what ``--trust-recorded-plugins`` sets); otherwise
`require_plugins` stops with one line naming the plugin the records need and how to allow it.
Results folders are shared and downloaded: opening one must not run code its sender chose.

Failures are one-line `PluginError`s naming the module (and distribution): an import error, a name
that clashes with a built-in or another plugin, a recorded plugin not named or missing at resume
(`require_plugins`). A plugin that registers nothing is a `PluginWarning`. Each loaded plugin has a
`PluginInfo` (module, mechanisms, distribution and version, sha256 of its source) for records, and
each of its mechanisms a `Mechanism.plugin` naming the module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from . import registry

ENTRY_POINT_GROUP = "lra.attentions"
ENV_VAR = "LRA_PLUGINS"
DISABLE_AUTOLOAD_ENV_VAR = "LRA_DISABLE_PLUGIN_AUTOLOAD"
# Import the plugins that records name without naming them again (`--trust-recorded-plugins`).
TRUST_RECORDED_ENV_VAR = "LRA_TRUST_RECORDED_PLUGINS"


class PluginError(ValueError):
    """A plugin that cannot be loaded: import failure, name clash, missing at resume. One line."""


class PluginWarning(UserWarning):
    """A plugin that loaded but is suspicious (registers nothing, changed since a run recorded it)."""


@dataclass(frozen=True)
class PluginInfo:
    """Provenance of one loaded plugin, as stored in run configurations and records.

    Attributes:
        module: the module name that was imported (what `--plugin` and `LRA_PLUGINS` take).
        mechanisms: names of the mechanisms it registered.
        distribution: the installed distribution providing it (None for a module on sys.path only).
        version: that distribution's version.
        source_sha256: sha256 of the module's source file (None when it has no file).
        loaded_via: `"entry point"`, `"LRA_PLUGINS"` or `"explicit"` (load_plugins / --plugin).
        search_path: the sys.path entry the module was found under (for child processes; not recorded).
    """

    module: str
    mechanisms: tuple[str, ...]
    distribution: str | None = None
    version: str | None = None
    source_sha256: str | None = None
    loaded_via: str = "explicit"
    search_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields records keep (everything but the machine-specific search path)."""
        out = dataclasses.asdict(self)
        out["mechanisms"] = list(self.mechanisms)
        del out["search_path"]
        return out

    def describe(self) -> str:
        """One line, e.g. `mypkg.myattn (mypkg 1.2.0, sha256 3f2a9c1e0b7d): myattn`."""
        origin = [f"{self.distribution} {self.version}"] if self.distribution else []
        if self.source_sha256:
            origin.append(f"sha256 {self.source_sha256[:12]}")
        where = f" ({', '.join(origin)})" if origin else ""
        return f"{self.module}{where}: {', '.join(self.mechanisms) or '(no mechanisms)'}"


# Plugins loaded in this process, by module name, in load order.
_LOADED: dict[str, PluginInfo] = {}


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin loaded in this process, in load order."""
    return list(_LOADED.values())


def plugin_records() -> list[dict[str, Any]]:
    """`PluginInfo.to_dict()` of every loaded plugin, for a run's configuration and its records."""
    return [info.to_dict() for info in _LOADED.values()]


def provenance_of(mechanism: registry.Mechanism) -> dict[str, Any] | None:
    """`PluginInfo.to_dict()` of the plugin that registered `mechanism`; None for a built-in, or for a
    mechanism registered by a script rather than loaded as a plugin (nothing a child could import)."""
    info = _LOADED.get(mechanism.plugin) if mechanism.plugin else None
    return info.to_dict() if info is not None else None


def env_modules(environ: Mapping[str, str] | None = None) -> list[str]:
    """The module names in LRA_PLUGINS (comma separated, blanks ignored)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [name.strip() for name in value.split(",") if name.strip()]


def load_plugins(
    modules: Iterable[str] = (), *, entry_points: bool = True, env: bool = True
) -> list[PluginInfo]:
    """Import plugins: the `lra.attentions` entry points (unless LRA_DISABLE_PLUGIN_AUTOLOAD is set),
    the LRA_PLUGINS modules, then `modules`.

    Returns the `PluginInfo` of each requested plugin (a plugin already loaded is returned as it was:
    loading twice is a no-op). Raises `PluginError` on the first plugin that fails.
    """
    requested: list[tuple[str, str, Any]] = []  # (module, loaded_via, entry point)
    if entry_points and not _autoload_disabled():
        requested.extend((ep.module, "entry point", ep) for ep in _entry_points())
    if env:
        requested.extend((name, ENV_VAR, None) for name in env_modules())
    requested.extend((name, "explicit", None) for name in modules)
    if any(entry_point is None for _, _, entry_point in requested):
        _make_working_directory_importable()
    _top_level_distributions.cache_clear()  # scanned at most once per call, afresh each call
    infos: list[PluginInfo] = []
    for module, loaded_via, entry_point in requested:
        info = _LOADED.get(module) or _load(module, loaded_via, entry_point)
        if info not in infos:
            infos.append(info)
    return infos


def autoload() -> list[PluginInfo]:
    """What the registry runs at its first use: entry points (unless LRA_DISABLE_PLUGIN_AUTOLOAD is
    set) and LRA_PLUGINS."""
    return load_plugins()


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV_VAR, "").lower() not in ("", "0", "false", "no")


def trusts_recorded_plugins(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user allowed importing the plugins records name (LRA_TRUST_RECORDED_PLUGINS)."""
    value = (os.environ if environ is None else environ).get(TRUST_RECORDED_ENV_VAR, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def require_plugins(
    recorded: Iterable[str | Mapping[str, Any]], *, source: str = "this run"
) -> list[PluginInfo]:
    """The plugins a recorded run (or suite) used (module names or `PluginInfo.to_dict()` entries),
    loaded; `source` names the records in messages ("the run in DIR").

    A recorded plugin must have been named by the user (`--plugin`, LRA_PLUGINS, an installed entry
    point), unless the user trusts recorded plugins (`trusts_recorded_plugins`): records never import
    code by themselves, and otherwise this is a `PluginError` saying which plugin they need and how
    to allow it. A module that cannot be found is a `PluginError` saying what to install or put on
    PYTHONPATH; a mechanism the run used that the plugin no longer registers is one too; a plugin
    whose source changed since it was recorded is a `PluginWarning` (results would mix two versions).
    """
    recorded = list(recorded)
    if recorded:
        load_plugins()  # what the user named: entry points and LRA_PLUGINS (a no-op once loaded)
    trusted = trusts_recorded_plugins()
    infos = []
    for entry in recorded:
        wanted = {"module": entry} if isinstance(entry, str) else dict(entry)
        module = wanted["module"]
        if module not in _LOADED and not trusted:
            used = ", ".join(wanted.get("mechanisms") or ()) or "its attention"
            raise PluginError(
                f"{source} uses the attention plugin {module!r} ({used}), which is not imported: records "
                f"never run code by themselves; pass --plugin {module} (or set {ENV_VAR}={module}) to import "
                "it, or --trust-recorded-plugins to import the plugins records name"
            )
        try:
            info = load_plugins([module], entry_points=False, env=False)[0]
        except PluginError as err:
            if not _is_missing(err.__cause__, module):
                raise
            dist = wanted.get("distribution")
            install = (
                f"install {dist}{'==' + wanted['version'] if wanted.get('version') else ''} or "
                if dist
                else ""
            )
            raise PluginError(
                f"{source} uses the attention plugin {module!r}, which cannot be imported: {install}put the "
                f"directory holding {module.split('.')[0]!r} on PYTHONPATH (or run from that directory)"
            ) from None
        missing = sorted(set(wanted.get("mechanisms", ())) - set(info.mechanisms))
        if missing:
            raise PluginError(
                f"{source} uses attention {', '.join(map(repr, missing))} of plugin {module!r}, which no "
                f"longer registers it (it registers: {', '.join(info.mechanisms) or 'nothing'})"
            )
        then, now = wanted.get("source_sha256"), info.source_sha256
        if then and now and then != now:
            warnings.warn(
                f"attention plugin {module!r} changed since {source} was recorded (sha256 {then[:12]} then, "
                f"{now[:12]} now); its results mix two versions of the code",
                PluginWarning,
                stacklevel=2,
            )
        infos.append(info)
    return infos


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ` (default os.environ) under which a child process loads the same plugins.

    LRA_PLUGINS gains every plugin loaded here other than entry points (a child finds those itself),
    and PYTHONPATH the directories they were found in (a plugin in the working directory stays
    importable from a child started elsewhere: torchrun workers, SLURM jobs).
    """
    env = dict(os.environ if environ is None else environ)
    # Every plugin loaded here was named by the user or trusted from records: the child imports it
    # as named (LRA_PLUGINS), so that it never depends on trusting what its own run_config.json says.
    carried = [info for info in _LOADED.values() if info.loaded_via != "entry point"]
    modules = list(dict.fromkeys(env_modules(env) + [info.module for info in carried]))
    if modules:
        env[ENV_VAR] = ",".join(modules)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    extra = [info.search_path for info in carried if info.search_path and info.search_path not in paths]
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(list(dict.fromkeys(extra)) + paths)
    return env


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    # Several copies of one distribution on sys.path list an entry point twice; import it once.
    return list({(ep.name, ep.value): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}.values())


def _make_working_directory_importable() -> None:
    """Plugins are importable from the working directory, as under `python -m` or pytest, even when
    the `lra` console script (whose sys.path[0] is its bin directory) runs."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _load(module: str, loaded_via: str, entry_point: Any) -> PluginInfo:
    label = f"attention plugin {module!r}"
    dist_name = getattr(getattr(entry_point, "dist", None), "name", None)
    if entry_point is not None:
        label += f" (entry point {entry_point.name!r} of distribution {dist_name or 'unknown'})"
    elif loaded_via == ENV_VAR:
        label += f" (from {ENV_VAR})"
    if not module or module.endswith(".py") or "/" in module or os.sep in module:
        stem = Path(module).stem or module
        raise PluginError(
            f"{label}: a plugin is a module name, not a path: use {stem!r} with its directory on PYTHONPATH "
            "(or run from that directory)"
        )
    before = dict(registry._REGISTRY)
    previous, registry._loading_plugin = registry._loading_plugin, module
    try:
        imported = importlib.import_module(module)
        if entry_point is not None and entry_point.attr:  # `module:function` registers when called
            target = entry_point.load()
            if callable(target):
                target()
    except registry.NameClashError as err:
        _forget_new_registrations(before)
        raise PluginError(f"{label}: {err}") from err
    except Exception as err:  # anything a third-party import raises becomes one line naming it
        _forget_new_registrations(before)
        if _is_missing(err, module):
            raise PluginError(
                f"{label} not found: no module {err.name!r} on sys.path (the working directory included); "
                "install it or put its directory on PYTHONPATH"
            ) from err
        message = " ".join(str(err).split()) or "(no message)"
        raise PluginError(f"{label} failed to import: {type(err).__name__}: {message}") from err
    finally:
        registry._loading_plugin = previous
    new = [name for name in registry._REGISTRY if name not in before]
    if not new:  # imported earlier by other means: its registrations carry its name
        new = [name for name, mech in registry._REGISTRY.items() if mech.plugin == module]
    if not new:
        warnings.warn(
            f"{label} registered no attention mechanism (it should call attention_zoo.register when imported)",
            PluginWarning,
            stacklevel=3,
        )
    distribution, version = _distribution(module, dist_name)
    info = PluginInfo(
        module=module,
        mechanisms=tuple(new),
        distribution=distribution,
        version=version,
        source_sha256=_source_sha256(imported),
        loaded_via=loaded_via,
        search_path=_search_path(imported, module),
    )
    _LOADED[module] = info
    return info


def _forget_new_registrations(before: Mapping[str, registry.Mechanism]) -> None:
    """A plugin that failed halfway leaves nothing registered."""
    for name in [name for name in registry._REGISTRY if name not in before]:
        del registry._REGISTRY[name]


def _is_missing(err: BaseException | None, module: str) -> TypeGuard[ModuleNotFoundError]:
    """Whether `err` says the module itself (or a parent package) is not installed, rather than that
    the plugin imports something missing."""
    if not isinstance(err, ModuleNotFoundError) or err.name is None:
        return False
    return module == err.name or module.startswith(err.name + ".")


@functools.lru_cache(maxsize=1)
def _top_level_distributions() -> Mapping[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def _distribution(module: str, dist_name: str | None) -> tuple[str | None, str | None]:
    from importlib import metadata

    if dist_name is None:
        candidates = _top_level_distributions().get(module.split(".")[0], [])
        dist_name = candidates[0] if candidates else None
    if dist_name is None:
        return None, None
    try:
        return dist_name, metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return dist_name, None


def _source_sha256(module: Any) -> str | None:
    path = getattr(module, "__file__", None)
    if not path or not os.path.isfile(path):
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _search_path(module: Any, name: str) -> str | None:
    """The sys.path entry `name` was imported from: its file's directory minus the dotted path."""
    path = getattr(module, "__file__", None)
    if not path:
        return None
    root = Path(path).resolve().parent
    depth = name.count(".") + (1 if Path(path).stem == "__init__" else 0)
    for _ in range(depth):
        root = root.parent
    return str(root)


# The registry runs `autoload` at its first use (it cannot import this module: that would be a cycle).
registry._first_use_hook = autoload
