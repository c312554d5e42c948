"""One validated, frozen Settings from GitHub (INPUT_*), CircleCI and GitLab (PYCI_*) and CLI flags.

CONTRACT (other modules rely on these field names and types; loading is implemented below).

Precedence: CLI flags > environment (INPUT_* then PYCI_*) > platform defaults > INPUTS defaults.
An empty value means "not set" (GitHub passes every declared input, empty when unused).
Validation is two steps: the JSON schema checks each input as written (schema/settings.schema.json);
then the conversion to typed values checks what a schema cannot (files exist, pairs of inputs, ranges).
Every problem is collected, so one InputError names every bad input at once.
"""

from __future__ import annotations

import functools
import json
import re
import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pyci import node_images
from pyci.results import InputError
from pyci.values import (  # noqa: F401 - parse_* and show are part of settings' API (tests, cli)
    MAX_DURATION,
    _is,
    parse_bool,
    parse_duration,
    parse_readiness_timeouts,
    parse_size,
    parse_tilt_args,
    show,
    split_list,
    unwritable,
)

# Labels on everything a run creates, so `pyci cleanup` and the tests can find it.
LABEL_MANAGED = "io.pyci.managed"
LABEL_RUN = "io.pyci.run"
LABEL_CLUSTER = "io.pyci.cluster"
LABEL_REAPER = "io.pyci.reaper"  # not io.pyci.managed: the reaper's own cleanup must not remove it


@dataclass(frozen=True)
class Settings:
    tiltfile: Path = Path("Tiltfile")  # resolved against working_directory
    working_directory: Path = Path(".")
    tilt_args: tuple[str, ...] = ()
    timeout: float = 1800.0  # seconds, `tilt ci --timeout`
    cluster: str = "kind"  # kind | existing
    cluster_name: str = "pyci"
    kind_config: Path | None = None
    node_image: str | None = None
    kubernetes_version: str | None = None  # a full version in node_images.IMAGES ("1.33.4")
    build_ahead: bool = True  # build image targets and pull third-party images while the cluster boots
    kubeconfig: Path | None = None  # cluster: existing (default: $KUBECONFIG or ~/.kube/config)
    registry: str = "local"  # local | none | host[:port]/path
    registry_username: str | None = None
    registry_password: str | None = field(default=None, repr=False)  # a secret
    registry_port: int = 0  # 0: docker picks a free port (no race between runs sharing a daemon)
    registry_image: str = "registry:2"
    socat_image: str = "alpine/socat:1.8.0.0"  # forwarders on a remote daemon (topology: remote)
    topology: str = "auto"  # auto | host | sibling | remote
    wait: bool = True
    wait_timeout: float = 300.0
    readiness_timeouts: Mapping[str, float] = field(default_factory=dict)  # "job/migrate" -> 600.0
    max_restarts: int = 3  # fail fast when a container restarted more often
    namespaces: tuple[str, ...] = ()  # empty: every namespace but the system ones
    progress_interval: float = 15.0
    junit: Path = Path("pyci-junit.xml")
    artifacts_dir: Path = Path("pyci-artifacts")
    summary: bool = True
    keep_cluster: bool = False
    debug: bool = False
    cache_dir: Path | None = None  # restored from at the start, saved to at the end (pyci.cache)
    cache_size: int = 4 * 1024**3  # bytes the cache dir may hold; least recently used entries go first
    run_id: str = "local"  # unique per run: labels, per-run remote repository prefix

    @property
    def tiltfile_path(self) -> Path:
        return self.tiltfile if self.tiltfile.is_absolute() else self.working_directory / self.tiltfile

    @property
    def kind_node_image(self) -> str | None:
        """What `kind create --image` gets: node-image wins over kubernetes-version; None: kind's default."""
        if self.node_image or not self.kubernetes_version:
            return self.node_image
        return node_images.IMAGES[self.kubernetes_version]

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.registry_password,) if s)

    @property
    def remote_registry(self) -> bool:
        return self.registry not in ("local", "none")


@dataclass(frozen=True)
class InputSpec:
    """One user-facing input. `default` is written as a user would write it ("" = none)."""

    name: str  # kebab-case, as in action.yml
    default: str
    description: str
    secret: bool = False

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env_names(self) -> tuple[str, ...]:
        """Environment variables that set this input, first wins."""
        upper = self.name.upper()
        return (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}", f"PYCI_{upper.replace('-', '_')}")


# The canonical list of inputs: action.yml, the orb and the README are generated or checked from it.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("tiltfile", "Tiltfile", "Path to the Tiltfile, relative to working-directory."),
    InputSpec("working-directory", ".", "Directory tilt runs in."),
    InputSpec("tilt-args", "", "Arguments after `--` for the Tiltfile's config, shell-quoted."),
    InputSpec("timeout", "30m", "Timeout of `tilt ci` (90s, 5m, 1h30m or seconds)."),
    InputSpec("cluster", "kind", "`kind` creates a cluster; `existing` uses kubeconfig or KUBECONFIG."),
    InputSpec("cluster-name", "", "Name of the kind cluster; empty: a new name per run (pyci-<random>). "
              "An existing cluster is reused only when named here."),
    InputSpec("kind-config", "", "A kind config file merged under pyci's own."),
    InputSpec("node-image", "", "kind node image (kindest/node:...); empty: kind's default. Wins over "
              "kubernetes-version."),
    InputSpec("kubernetes-version", "", "Kubernetes version of the kind cluster (1.34, 1.33.4, ...): the "
              "node image pinned by digest for the bundled kind; empty: kind's default."),
    InputSpec("build-ahead", "true", "Build the Tiltfile's images while the cluster boots (and push them "
              "into the local registry), so `tilt ci` finds them cached and pushed, and pull the "
              "third-party images the manifests name. Either way, those the daemon has are loaded into "
              "the kind nodes."),
    InputSpec("kubeconfig", "", "Kubeconfig of an existing cluster; empty: KUBECONFIG or ~/.kube/config."),
    InputSpec("registry", "local", "`local` (a registry container), `none`, or a remote host[:port]/path."),
    InputSpec("registry-username", "", "User name for a remote registry."),
    InputSpec("registry-password", "", "Password or token for a remote registry.", secret=True),
    InputSpec("registry-port", "0", "Host port of the local registry (on 127.0.0.1); 0: a free one."),
    InputSpec("registry-image", "registry:2", "Image of the local registry."),
    InputSpec("socat-image", "alpine/socat:1.8.0.0", "Image of the socat forwarder run on a remote daemon."),
    InputSpec("topology", "auto", "Where the Docker daemon is: auto, host, sibling or remote."),
    InputSpec("wait", "true", "Watch every workload until healthy after `tilt ci`."),
    InputSpec("wait-timeout", "5m", "How long the readiness watch waits."),
    InputSpec("readiness-timeouts", "", "Per-workload timeouts, e.g. job/migrate=10m,deployment/api=2m."),
    InputSpec("max-restarts", "3", "Fail when a container restarted more often than this."),
    InputSpec("namespaces", "", "Namespaces the readiness watch checks; empty: all but system ones."),
    InputSpec("progress-interval", "15s", "How often to report what the run is waiting on."),
    InputSpec("junit", "pyci-junit.xml", "Path of the JUnit XML report."),
    InputSpec("artifacts-dir", "pyci-artifacts", "Directory for the diagnostics bundle."),
    InputSpec("summary", "true", "Write the step summary."),
    InputSpec("keep-cluster", "false", "Keep the cluster and registry after the run (debugging)."),
    InputSpec("debug", "false", "Verbose logs (also on when the runner's debug logging is on)."),
    InputSpec("cache-dir", "", "Directory pyci restores its cache from at the start and saves it to at the "
              "end (the layers of the images it builds ahead), for warm starts on a fresh runner; persist "
              "it with actions/cache, restore_cache/save_cache or a mounted directory. Empty: no cache."),
    InputSpec("cache-size", "4GB", "Most the cache dir may hold (e.g. 500MB, 4GB); least recently used "
              "entries are evicted."),
)
INPUTS_BY_NAME: dict[str, InputSpec] = {spec.name: spec for spec in INPUTS}

_RUN_ID_UNSAFE = re.compile(r"[^a-z0-9-]+")


def load_settings(
    argv_overrides: Mapping[str, str | None],
    environ: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from CLI flags (kebab or snake keys), the environment and platform defaults.

    Raises InputError whose message has one line per bad input.
    """
    raw = collect(argv_overrides, environ, defaults or {})
    if "debug" not in _explicit(argv_overrides, environ) and environ.get("RUNNER_DEBUG") == "1":
        raw["debug"] = "true"  # GitHub's "re-run with debug logging" should make pyci verbose too
    document = prepare(raw)
    problems = schema_problems(document)
    values = convert(document, problems)
    check_relations(values, problems)
    if problems:
        raise InputError(format_problems(problems))
    rid = run_id(environ)
    if not values.get("cluster_name"):
        # Runs sharing a daemon never meet by accident: each gets its own cluster (and registry).
        values["cluster_name"] = f"pyci-{rid.rsplit('-', 1)[-1]}"
    return Settings(**values, run_id=rid)


def collect(
    argv_overrides: Mapping[str, str | None], environ: Mapping[str, str], defaults: Mapping[str, str]
) -> dict[str, str]:
    """One raw string per input, by precedence; empty strings count as unset."""
    cli = _normalise_keys(argv_overrides)
    raw: dict[str, str] = {}
    for spec in INPUTS:
        candidates = [cli.get(spec.name), *(environ.get(n) for n in spec.env_names)]
        candidates += [defaults.get(spec.name), spec.default]
        raw[spec.name] = next((c for c in candidates if c), "")
    return raw


def raw_secrets(argv_overrides: Mapping[str, str | None], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret value given anywhere, so a platform can mask them before validation prints."""
    cli = _normalise_keys(argv_overrides)
    found: list[str] = []
    for spec in INPUTS:
        if spec.secret:
            values = [cli.get(spec.name), *(environ.get(n) for n in spec.env_names)]
            found += [v for v in values if v]
    return tuple(found)


def _normalise_keys(argv_overrides: Mapping[str, str | None]) -> dict[str, str | None]:
    cli = {key.replace("_", "-"): value for key, value in argv_overrides.items()}
    unknown = set(cli) - set(INPUTS_BY_NAME)
    if unknown:  # a programming error in the caller, not a user mistake
        raise ValueError(f"unknown inputs: {', '.join(sorted(unknown))}")
    return cli


def _explicit(argv_overrides: Mapping[str, str | None], environ: Mapping[str, str]) -> set[str]:
    cli = _normalise_keys(argv_overrides)
    return {s.name for s in INPUTS if cli.get(s.name) or any(environ.get(n) for n in s.env_names)}


def prepare(raw: Mapping[str, str]) -> dict[str, Any]:
    """The document the schema validates: stripped strings, list inputs split, unset inputs dropped."""
    document: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "namespaces":
            document[name] = split_list(value, spaces=True)
        elif name == "readiness-timeouts":  # `job/migrate = 10m` reads naturally in a YAML block
            document[name] = [re.sub(r"\s*=\s*", "=", item) for item in split_list(value, spaces=False)]
        elif INPUTS_BY_NAME[name].secret:
            if value:  # a secret is taken verbatim: spaces may be part of it
                document[name] = value
        elif value.strip():
            document[name] = value.strip()
    return document


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files("pyci").joinpath("schema/settings.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def allowed(name: str) -> str:
    return str(schema()["properties"][name]["x-allowed"])


def schema_problems(document: Mapping[str, Any]) -> dict[str, list[str]]:
    validator = jsonschema.Draft202012Validator(schema())
    problems: dict[str, list[str]] = {}
    for error in validator.iter_errors(document):
        path = list(error.absolute_path)
        name = str(path[0]) if path else "?"
        _add(problems, name, describe(error, name, is_entry=len(path) > 1))
    return problems


def describe(error: jsonschema.ValidationError, name: str, is_entry: bool) -> str:
    """What is wrong, without echoing secrets or jsonschema's wording."""
    spec = INPUTS_BY_NAME.get(name)
    shown = "the value" if spec is None or spec.secret else show(error.instance)
    if is_entry:
        shown = f"entry {shown}"
    if error.validator == "maxLength":
        return f"{shown} is longer than {error.validator_value} characters"
    if error.validator == "minLength":
        return f"{shown} is empty"
    if error.validator == "enum":
        return f"{shown} is not one of the choices"
    return f"{shown} is not valid"


def _add(problems: dict[str, list[str]], name: str, problem: str) -> None:
    if problem not in problems.setdefault(name, []):
        problems[name].append(problem)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "tiltfile": Path,
    "working-directory": Path,
    "tilt-args": parse_tilt_args,
    "timeout": parse_duration,
    "kind-config": Path,
    "kubernetes-version": node_images.resolve,
    "kubeconfig": Path,
    "registry-port": int,
    "build-ahead": parse_bool,
    "wait": parse_bool,
    "wait-timeout": parse_duration,
    "readiness-timeouts": parse_readiness_timeouts,
    "max-restarts": int,
    "namespaces": lambda items: tuple(dict.fromkeys(items)),
    "progress-interval": parse_duration,
    "junit": Path,
    "artifacts-dir": Path,
    "summary": parse_bool,
    "keep-cluster": parse_bool,
    "debug": parse_bool,
    "cache-dir": Path,
    "cache-size": parse_size,
}


def convert(document: Mapping[str, Any], problems: dict[str, list[str]]) -> dict[str, Any]:
    """Typed Settings fields for inputs the schema accepted; set inputs that failed are skipped."""
    values: dict[str, Any] = {}
    for spec in INPUTS:
        if spec.name not in document or spec.name in problems:
            continue
        converter = _CONVERTERS.get(spec.name, str)
        try:
            values[spec.field] = converter(document[spec.name])
        except ValueError as err:
            _add(problems, spec.name, str(err))
    return values


def check_relations(values: Mapping[str, Any], problems: dict[str, list[str]]) -> None:
    """What depends on the file system or on another input."""
    workdir = values.get("working_directory", Path("."))
    workdir_ok = "working-directory" not in problems and _is(Path.is_dir, workdir)
    if "working-directory" not in problems and not workdir_ok:
        _add(problems, "working-directory", f"{show(str(workdir))} is not a directory")
    if workdir_ok and "tiltfile" in values:
        tiltfile = Settings(tiltfile=values["tiltfile"], working_directory=workdir).tiltfile_path
        if not _is(Path.is_file, tiltfile):
            _add(problems, "tiltfile", f"{show(str(tiltfile))} is not a file")
    for name in ("kind-config", "kubeconfig"):
        path = values.get(name.replace("-", "_"))
        if path is not None and not _is(Path.is_file, path):
            _add(problems, name, f"{show(str(path))} is not a file")
        elif path is not None and name == "kind-config":
            _check_kind_config(path, problems)
    # Caught here, not when the report is written at the end of a long run.
    for name, is_dir in (("junit", False), ("artifacts-dir", True), ("cache-dir", True)):
        path = values.get(name.replace("-", "_"))
        if path is not None and (why := unwritable(path, is_dir)):
            _add(problems, name, f"{show(str(path))} {why}")
    _check_credentials(values, problems)


def _check_kind_config(path: Path, problems: dict[str, list[str]]) -> None:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        _add(problems, "kind-config", f"{show(str(path))} cannot be read: {err}")
        return
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        _add(problems, "kind-config", f"{show(str(path))} is not YAML{at}")
        return
    if not isinstance(document, dict):
        _add(problems, "kind-config", f"{show(str(path))} is not a kind Cluster config (a YAML mapping)")


def _check_credentials(values: Mapping[str, Any], problems: dict[str, list[str]]) -> None:
    registry = values.get("registry", "local")
    if registry in ("local", "none") or "registry" in problems:
        return  # credentials only matter for a remote registry; ignored otherwise (matrix-friendly)
    has_user, has_password = "registry_username" in values, "registry_password" in values
    if has_user and not has_password and "registry-password" not in problems:
        _add(problems, "registry-password", f"is missing: registry-username is set for {show(registry)}")
    if has_password and not has_user and "registry-username" not in problems:
        _add(problems, "registry-username", f"is missing: registry-password is set for {show(registry)}")


def format_problems(problems: Mapping[str, list[str]]) -> str:
    """One line per bad input, in the order of INPUTS: `name: what is wrong; allowed: what is`."""
    order = [spec.name for spec in INPUTS if spec.name in problems]
    order += sorted(set(problems) - set(order))
    return "\n".join(
        f"{name}: {'; '.join(problems[name])}; allowed: {_allowed_or_blank(name)}" for name in order
    )


def _allowed_or_blank(name: str) -> str:
    return allowed(name) if name in INPUTS_BY_NAME else "one of the documented inputs"


def run_id(environ: Mapping[str, str]) -> str:
    """Unique per invocation, safe in labels, container names and repository paths.

    The CI's ids make it readable; a random suffix keeps two jobs of one workflow run (a matrix on one
    self-hosted runner) apart, in labels, cleanup and a remote registry's per-run prefix alike.
    """
    if environ.get("GITHUB_RUN_ID"):
        candidate = f"gh-{environ['GITHUB_RUN_ID']}-{environ.get('GITHUB_RUN_ATTEMPT') or '1'}"
    elif environ.get("CIRCLE_WORKFLOW_ID") or environ.get("CIRCLE_BUILD_NUM"):
        workflow = (environ.get("CIRCLE_WORKFLOW_ID") or "")[:8]
        candidate = "-".join(p for p in ("cci", workflow, environ.get("CIRCLE_BUILD_NUM") or "") if p)
    elif environ.get("CI_JOB_ID"):  # GitLab: the job id is unique on its instance
        candidate = f"gl-{environ['CI_JOB_ID']}"
    else:
        candidate = ""
    safe = _RUN_ID_UNSAFE.sub("-", candidate.lower()).strip("-")[:40].strip("-")
    suffix = _secrets.token_hex(3)
    return f"{safe}-{suffix}" if safe else suffix
