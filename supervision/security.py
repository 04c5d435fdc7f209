"""What a DAG the server runs may reach (SPEC §7 ``[security]``), checked without importing user code.

The supervisor validates DAG files with :class:`ServerRules`, the adapters' registry plus:

* ``file://`` sources, sinks and dead letters, and a ``sql_config_file``, never name the
  server's own files (its ``state_dir``, users file, ``dags`` folders and files, TLS files and
  config), whatever ``file_roots`` says; with ``file_roots`` they lie inside those folders. Paths
  are compared once resolved (``..`` and symlinks followed, relative ones from the cwd, as
  the file adapter opens them).
* user classes (``module.Class`` calculators and transformers, ``custom://`` adapters) are
  checked by name only: with ``module_prefixes`` their module must be one of those packages
  or inside one. Nothing is imported here: the worker imports the class when it builds the
  DAG, and a class that cannot be imported or built fails that DAG (SPEC §4).

Usage::

    rules = ServerRules(config)
    check_dag_dict(data, "upload.json", uris=rules)   # problems name the JSON path and the rule
    rules.check_uri("file:///etc/passwd", "source")  # "file URI ... is outside [security] file_roots ..."
"""

from __future__ import annotations

import os
from typing import Any

from adapters import registry
from adapters.base import parse_uri
from graphs.dotted import split_dotted
from supervision.config import ServerConfig

FILE_SCHEMES = ("file",)
CLASS_SCHEMES = ("custom",)
FILE_KEYS = ("sql_config_file",)  # config keys (or URI query parameters) naming a file the worker reads


def resolved(path: str) -> str:
    """``path`` made absolute with ``..`` and symlinks resolved (as far as it exists)."""
    return os.path.realpath(os.path.abspath(path))


def inside(path: str, folder: str) -> bool:
    """True when resolved ``path`` is ``folder`` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def describe(uri: str) -> str:
    """How a message names a file reference: ``file URI 'file:///x'``, or a config value as given."""
    return f"file URI {uri!r}" if "://" in uri else uri


def module_allowed(module: str, prefixes: tuple[str, ...] | None) -> bool:
    """True when ``module`` is one of ``prefixes`` or inside one (``acme.dags`` allows ``acme.dags.calc``);
    every module when ``prefixes`` is None."""
    return prefixes is None or any(module == p or module.startswith(p + ".") for p in prefixes)


class ServerRules:
    """The URI and class rules the server validates DAGs with (a :class:`graphs.validation.UriRules`)."""

    imports_user_code = False  # validation checks user classes by name; the worker imports them

    def __init__(self, config: ServerConfig) -> None:
        security = config.security
        self.roots = None if security.file_roots is None else tuple(resolved(r) for r in security.file_roots)
        self.prefixes = security.module_prefixes
        own = [config.state_dir, config.users, config.path, *config.dags, config.tls_cert, config.tls_key]
        self.refused = tuple(resolved(p) for p in own if p and not p.startswith("<"))

    # -- UriRules --------------------------------------------------------------------------------------
    def check_uri(self, uri: str, role: str) -> str | None:
        problem = registry.check_uri(uri, role)
        if problem is not None:
            return problem
        parsed = parse_uri(uri)
        if parsed.scheme in FILE_SCHEMES:
            return self.check_file(uri, parsed.body)
        if parsed.scheme in CLASS_SCHEMES:
            return self.check_user_class(parsed.body.replace(":", "."), "custom adapter")
        return None

    def config_keys(self, uri: str, role: str) -> tuple[str, ...] | None:
        return registry.config_keys(uri, role)

    def check_config(self, uri: str, config: dict[str, Any], role: str, dag_settings: dict[str, int]) -> list[Any]:
        """What the endpoint's adapter finds wrong with its config in its DAG (as the registry says)."""
        return registry.check_config(uri, config, role, dag_settings)

    def check_values(self, uri: str, config: dict[str, Any], role: str) -> list[tuple[str, str]]:
        """``(key, why)`` for each config value naming a file (``sql_config_file``) the rules refuse."""
        params = parse_uri(uri).params
        found = []
        for key in FILE_KEYS:
            value = config.get(key, params.get(key))
            if isinstance(value, str) and value:
                problem = self.check_file(f"{key} {value!r}", value)
                if problem is not None:
                    found.append((key, problem))
        return found

    def is_shareable(self, uri: str) -> bool:
        """As the registry says, except for ``custom://``: its class is not imported here, so the worker
        refuses to run replicas of a DAG whose custom source says it cannot be shared."""
        if parse_uri(uri).scheme in CLASS_SCHEMES:
            return True
        return registry.is_shareable(uri)

    # -- the server's own rules --------------------------------------------------------------------------
    def check_file(self, uri: str, body: str) -> str | None:
        """Why the file ``body`` names (``uri``: how the DAG names it) may not be used here, or None."""
        path = resolved(body)
        for own in self.refused:
            if inside(path, own):
                return (f"{describe(uri)} names {path}, one of the server's own files (state_dir, users file, "
                        f"dags folders, config, TLS files: {own}); a DAG may never read or write those")
        if self.roots is not None and not any(inside(path, root) for root in self.roots):
            return (f"{describe(uri)} names {path}, outside [security] file_roots ({', '.join(self.roots)}); "
                    "use a file under one of them, or ask the server's operator to add its folder")
        return None

    def check_user_class(self, target: str, kind: str) -> str | None:
        """Why the user class ``target`` (``module.Class``) may not be used as ``kind``, or None."""
        parts = split_dotted(target)
        if parts is None:
            return f"{kind} type {target!r} is not a 'module.Class' path"
        if not module_allowed(parts[0], self.prefixes):
            allowed = ", ".join(self.prefixes or ())
            return (f"{kind} {target!r}: module {parts[0]!r} is outside [security] module_prefixes ({allowed}); "
                    "user classes must come from those packages")
        return None
