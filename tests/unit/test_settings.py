"""Inputs from GitHub (INPUT_*), CircleCI (PYCI_*) and CLI flags: precedence, parsing, every error."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pyci.results import ExitCode, InputError
from pyci.settings import (
    INPUTS,
    INPUTS_BY_NAME,
    Settings,
    load_settings,
    parse_duration,
    raw_secrets,
    run_id,
    schema,
)

SCHEMA_FILE = Path(__file__).parents[2] / "entrypoint" / "pyci" / "schema" / "settings.schema.json"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with a Tiltfile, a kind config and a kubeconfig; the current directory."""
    (tmp_path / "Tiltfile").write_text("print('hi')\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Tiltfile.ci").write_text("")
    (tmp_path / "kind.yaml").write_text("kind: Cluster\n")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(cli: dict[str, str | None] | None = None, /, **env: str) -> Settings:
    return load_settings(cli or {}, env)


def problems(cli: dict[str, str | None] | None = None, /, **env: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load(cli, **env)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return caught.value.message.splitlines()


# --- one list of inputs, everywhere ---
def test_inputs_schema_and_settings_agree():
    fields = {f.name for f in dataclasses.fields(Settings)} - {"run_id"}
    assert {spec.field for spec in INPUTS} == fields
    assert list(schema()["properties"]) == [spec.name for spec in INPUTS]
    assert len(INPUTS_BY_NAME) == len(INPUTS)
    for spec in INPUTS:
        assert spec.description.strip(), spec.name
        assert schema()["properties"][spec.name]["x-allowed"], spec.name
    assert json.loads(SCHEMA_FILE.read_text())["$schema"].endswith("2020-12/schema")


def test_defaults_are_the_settings_defaults(workspace: Path):
    loaded = load()
    # The cluster name is the one default made per run (pyci-<random>); everything else is fixed.
    assert dataclasses.replace(loaded, run_id="local", cluster_name="pyci") == Settings()


def test_design_inputs_and_extra_inputs_are_present():
    design = (
        "tiltfile working-directory tilt-args timeout cluster cluster-name kind-config node-image registry "
        "registry-port registry-image wait wait-timeout namespaces junit artifacts-dir summary keep-cluster "
        "debug"
    ).split()
    extra = "topology registry-username registry-password kubeconfig readiness-timeouts max-restarts "
    extra += "progress-interval"
    for name in design + extra.split():
        assert name in INPUTS_BY_NAME
    assert INPUTS_BY_NAME["max-restarts"].default == "3"
    assert INPUTS_BY_NAME["progress-interval"].default == "15s"
    assert INPUTS_BY_NAME["registry-password"].secret


# --- where inputs come from ---
@pytest.mark.parametrize(
    "env",
    [
        {"INPUT_CLUSTER-NAME": "from-github"},
        {"INPUT_CLUSTER_NAME": "from-github"},
        {"PYCI_CLUSTER_NAME": "from-github"},
    ],
)
def test_every_environment_spelling(workspace: Path, env: dict[str, str]):
    assert load_settings({}, env).cluster_name == "from-github"


def test_precedence_cli_then_github_then_circleci_then_platform_then_default(workspace: Path):
    env = {"INPUT_CLUSTER-NAME": "github", "PYCI_CLUSTER_NAME": "circle"}
    defaults = {"cluster-name": "platform"}
    assert load_settings({"cluster-name": "cli"}, env, defaults).cluster_name == "cli"
    assert load_settings({"cluster_name": "cli"}, env, defaults).cluster_name == "cli"  # snake key too
    assert load_settings({}, env, defaults).cluster_name == "github"
    assert load_settings({}, {"PYCI_CLUSTER_NAME": "circle"}, defaults).cluster_name == "circle"
    assert load_settings({}, {}, defaults).cluster_name == "platform"
    derived = load_settings({}, {})
    assert re.fullmatch(r"pyci-[0-9a-f]{6}", derived.cluster_name), derived.cluster_name
    assert derived.cluster_name == f"pyci-{derived.run_id}"  # locally the run id is the random part


def test_default_cluster_names_differ_per_run(workspace: Path):
    """Two runs of one CI job on one daemon (a matrix on a self-hosted runner) never share a cluster."""
    env = {"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "1"}
    first, second = load_settings({}, env), load_settings({}, env)
    assert first.cluster_name != second.cluster_name
    assert first.run_id != second.run_id and first.run_id.startswith("gh-42-1-")
    assert first.cluster_name == f"pyci-{first.run_id.rsplit('-', 1)[-1]}"
    assert first.registry_port == 0  # docker picks a free port: no race for 5001


def test_empty_means_not_set(workspace: Path):
    env = {"INPUT_CLUSTER-NAME": "", "PYCI_CLUSTER_NAME": "circle", "INPUT_TIMEOUT": "", "INPUT_WAIT": "  "}
    loaded = load_settings({"cluster-name": "", "timeout": None}, env)
    assert (loaded.cluster_name, loaded.timeout, loaded.wait) == ("circle", 1800.0, True)


def test_unknown_cli_key_is_a_programming_error():
    with pytest.raises(ValueError, match="no-such-input"):
        load_settings({"no-such-input": "x"}, {})


# --- every input, good values ---
GOOD = [
    ("tiltfile", "app/Tiltfile.ci", "tiltfile", Path("app/Tiltfile.ci")),
    ("working-directory", "app", "working_directory", Path("app")),
    ("tilt-args", "--env 'a b' --flag=\"x y\"\n--two", "tilt_args", ("--env", "a b", "--flag=x y", "--two")),
    ("timeout", "1h30m", "timeout", 5400.0),
    ("cluster", "existing", "cluster", "existing"),
    ("cluster-name", "pr-123-a", "cluster_name", "pr-123-a"),
    ("cluster-name", "a" * 32, "cluster_name", "a" * 32),
    ("kind-config", "kind.yaml", "kind_config", Path("kind.yaml")),
    ("node-image", "kindest/node:v1.31.0@sha256:abc", "node_image", "kindest/node:v1.31.0@sha256:abc"),
    ("kubernetes-version", "1.33", "kubernetes_version", "1.33.4"),  # a minor: its newest patch listed
    ("kubernetes-version", "v1.34", "kubernetes_version", "1.34.0"),
    ("kubernetes-version", " 1.31.12 ", "kubernetes_version", "1.31.12"),
    ("kubernetes-version", "v1.32.8", "kubernetes_version", "1.32.8"),
    ("kubeconfig", "kubeconfig", "kubeconfig", Path("kubeconfig")),
    ("registry", "none", "registry", "none"),
    ("registry", "ghcr.io/org/ci", "registry", "ghcr.io/org/ci"),
    ("registry", "localhost:5000/team/app", "registry", "localhost:5000/team/app"),
    ("registry", "registry:5000/ci", "registry", "registry:5000/ci"),
    ("registry-port", "0", "registry_port", 0),
    ("registry-port", "65535", "registry_port", 65535),
    ("registry-image", "mirror.example/registry:2.8", "registry_image", "mirror.example/registry:2.8"),
    ("socat-image", "pyci-lab/socat:latest", "socat_image", "pyci-lab/socat:latest"),
    ("topology", "sibling", "topology", "sibling"),
    ("wait", "No", "wait", False),
    ("wait-timeout", "90s", "wait_timeout", 90.0),
    (
        "readiness-timeouts",
        "job/migrate=10m,deployment/api=2m",
        "readiness_timeouts",
        {"job/migrate": 600.0, "deployment/api": 120.0},
    ),
    (
        "readiness-timeouts",
        "job/migrate=10m\n  statefulset/data/db = 1h\n",
        "readiness_timeouts",
        {"job/migrate": 600.0, "statefulset/data/db": 3600.0},
    ),
    ("max-restarts", "0", "max_restarts", 0),
    ("namespaces", "default, shop\napi   shop", "namespaces", ("default", "shop", "api")),
    ("progress-interval", "2.5", "progress_interval", 2.5),
    ("junit", "out/report.xml", "junit", Path("out/report.xml")),
    ("artifacts-dir", "out/artifacts", "artifacts_dir", Path("out/artifacts")),
    ("summary", "OFF", "summary", False),
    ("keep-cluster", "yes", "keep_cluster", True),
    ("build-ahead", "off", "build_ahead", False),
    ("debug", "1", "debug", True),
    ("cache-dir", "out/cache", "cache_dir", Path("out/cache")),
    ("cache-size", "500MB", "cache_size", 500 * 1024**2),
    ("cache-size", "1.5GiB", "cache_size", int(1.5 * 1024**3)),
]


@pytest.mark.parametrize(("name", "raw", "field", "expected"), GOOD, ids=[f"{g[0]}={g[1]!r}" for g in GOOD])
def test_good_value(workspace: Path, name: str, raw: str, field: str, expected: object):
    env = {f"INPUT_{name.upper()}": raw}
    if name == "tiltfile":
        env["INPUT_TILTFILE"] = raw
    if name == "working-directory":
        (workspace / "app" / "Tiltfile").write_text("")
    value = getattr(load_settings({}, env), field)
    assert (dict(value) if isinstance(expected, dict) else value) == expected


def test_every_input_has_a_good_value_test():
    assert {g[0] for g in GOOD} == set(INPUTS_BY_NAME) - {"registry-username", "registry-password"}


def test_registry_credentials(workspace: Path):
    loaded = load(
        INPUT_REGISTRY="ghcr.io/org/ci",
        **{"INPUT_REGISTRY-USERNAME": "bot", "PYCI_REGISTRY_PASSWORD": " p w "},
    )
    assert (loaded.registry_username, loaded.registry_password) == ("bot", " p w ")  # a secret is verbatim
    assert loaded.secrets == (" p w ",)
    assert loaded.remote_registry
    assert "p w" not in repr(loaded)


def test_credentials_are_ignored_for_a_local_registry(workspace: Path):
    assert load(**{"INPUT_REGISTRY-PASSWORD": "only-password"}).registry == "local"


# --- every input, bad values ---
BAD = [
    ("tiltfile", "missing/Tiltfile", "is not a file"),
    ("working-directory", "no-such-dir", "is not a directory"),
    ("tilt-args", "--name 'unclosed", "no closing quotation"),
    ("timeout", "5 minutes", "is not valid"),
    ("timeout", "0s", "more than 0"),
    ("timeout", "8" * 400, "more than 0"),  # float: inf
    ("timeout", "200h", "at most 7 days"),
    ("cluster", "kind2", "not one of the choices"),
    ("cluster-name", "My_Cluster", "is not valid"),
    ("cluster-name", "-leading", "is not valid"),
    ("cluster-name", "a" * 33, "longer than 32 characters"),
    ("kind-config", "nope.yaml", "is not a file"),
    ("node-image", "kindest/node v1", "is not valid"),
    ("kubernetes-version", "1.36", "'1.36' has no node image for kind v0.30.0"),
    ("kubernetes-version", "1.33.2", "'1.33.2' has no node image for kind v0.30.0"),
    ("kubernetes-version", "latest", "'latest' is not valid"),
    ("kubernetes-version", "1", "'1' is not valid"),
    ("kubernetes-version", "1.33.4.1", "is not valid"),
    ("kubeconfig", "nope", "is not a file"),
    ("registry", "docker.io", "is not valid"),
    ("registry", "ghcr.io/Org/CI", "is not valid"),
    ("registry", "remote", "is not valid"),
    ("registry-username", "two words", "is not valid"),
    ("registry-port", "65536", "is not valid"),
    ("registry-port", "-1", "is not valid"),
    ("registry-port", "http", "is not valid"),
    ("registry-image", ":latest", "is not valid"),
    ("socat-image", "bad image", "is not valid"),
    ("topology", "cloud", "not one of the choices"),
    ("wait", "maybe", "is not valid"),
    ("wait-timeout", "5mins", "is not valid"),
    ("readiness-timeouts", "job/migrate", "entry 'job/migrate' is not valid"),
    ("readiness-timeouts", "service/api=2m", "entry 'service/api=2m' is not valid"),
    ("readiness-timeouts", "job/migrate=0", "more than 0"),
    ("max-restarts", "three", "is not valid"),
    ("namespaces", "default Kube_System", "entry 'Kube_System' is not valid"),
    ("progress-interval", "0", "more than 0"),
    ("junit", "bad\x00path", "is not valid"),
    ("artifacts-dir", "bad\x00dir", "is not valid"),
    ("summary", "enabled", "is not valid"),
    ("keep-cluster", "2", "is not valid"),
    ("build-ahead", "sometimes", "is not valid"),
    ("debug", "verbose", "is not valid"),
    ("cache-dir", "bad\x00dir", "is not valid"),
    ("cache-size", "lots", "is not valid"),
    ("cache-size", "12KB", "less than 1MB"),
]


@pytest.mark.parametrize(("name", "raw", "wrong"), BAD, ids=[f"{b[0]}={b[1][:20]!r}" for b in BAD])
def test_bad_value(workspace: Path, name: str, raw: str, wrong: str):
    lines = problems(**{f"INPUT_{name.upper()}": raw})
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{name}: ")
    assert wrong in lines[0]
    assert f"; allowed: {schema()['properties'][name]['x-allowed']}" in lines[0]


def test_every_input_has_a_bad_value_test():
    assert {b[0] for b in BAD} == set(INPUTS_BY_NAME) - {"registry-password"}


def test_every_bad_input_is_listed_once(workspace: Path):
    env = {f"INPUT_{name.upper()}": raw for name, raw, _ in BAD}
    lines = problems(**env)
    names = {name for name, _, _ in BAD} - {"tiltfile"}  # not looked for in a working directory that is bad
    assert [line.split(":")[0] for line in lines] == [s.name for s in INPUTS if s.name in names]


def test_password_and_username_are_required_together_for_a_remote_registry(workspace: Path):
    secret = "s3cr%t-token"
    lines = problems(INPUT_REGISTRY="ghcr.io/org/ci", **{"INPUT_REGISTRY-PASSWORD": secret})
    assert lines == [
        "registry-username: is missing: registry-password is set for 'ghcr.io/org/ci'; allowed: "
        + schema()["properties"]["registry-username"]["x-allowed"]
    ]
    lines = problems(INPUT_REGISTRY="ghcr.io/org/ci", **{"INPUT_REGISTRY-USERNAME": "bot"})
    assert lines[0].startswith("registry-password: is missing: registry-username is set")


def test_a_secret_is_never_echoed(workspace: Path):
    secret = "x" * 5000  # fails nothing but would be long; make the loader describe it anyway
    with pytest.raises(InputError) as caught:
        load(INPUT_REGISTRY="ghcr.io/org/ci", INPUT_TIMEOUT="bad", **{"INPUT_REGISTRY-PASSWORD": secret})
    assert "xxxxx" not in caught.value.message


def test_a_long_value_is_shortened_in_the_message(workspace: Path):
    (line,) = problems(**{"INPUT_CLUSTER-NAME": "A" * 500})
    assert len(line) < 400


def test_a_tiltfile_is_found_relative_to_the_working_directory(workspace: Path):
    loaded = load(**{"INPUT_WORKING-DIRECTORY": "app", "INPUT_TILTFILE": "Tiltfile.ci"})
    assert loaded.tiltfile_path == Path("app/Tiltfile.ci")
    (line,) = problems(**{"INPUT_WORKING-DIRECTORY": "app"})
    assert line.startswith("tiltfile: 'app/Tiltfile' is not a file")
    absolute = str(workspace / "Tiltfile")
    assert load(**{"INPUT_WORKING-DIRECTORY": "app", "INPUT_TILTFILE": absolute}).tiltfile_path == Path(
        absolute
    )


def test_a_bad_working_directory_does_not_also_blame_the_tiltfile(workspace: Path):
    assert [line.split(":")[0] for line in problems(**{"INPUT_WORKING-DIRECTORY": "nowhere"})] == [
        "working-directory"
    ]


def test_readiness_timeouts_are_read_only(workspace: Path):
    loaded = load(**{"INPUT_READINESS-TIMEOUTS": "job/migrate=1m"})
    with pytest.raises(TypeError):
        loaded.readiness_timeouts["job/x"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1h0m5s", 3605),
        ("45", 45),
        ("0.5", 0.5),
        ("1.5s", 1.5),
        ("2m30s", 150),
        ("168h", 604800),
    ],
)
def test_durations(text: str, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "h", "1d", "1 h", "-5", "1e3", "m5", "1.5m", "5s1m", "169h", "nan", "inf"]
)
def test_bad_durations(text: str):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(v, True) for v in ("true", "TRUE", "True", "yes", "YES", "on", "On", "1")]
    + [(v, False) for v in ("false", "FALSE", "no", "No", "off", "OFF", "0")],
)
def test_booleans(workspace: Path, raw: str, expected: bool):
    assert load(**{"INPUT_KEEP-CLUSTER": raw}).keep_cluster is expected


def test_runner_debug_turns_debug_on_unless_set(workspace: Path):
    assert load(RUNNER_DEBUG="1").debug
    assert not load(RUNNER_DEBUG="1", INPUT_DEBUG="false").debug
    assert not load().debug


# --- run id ---
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_RUN_ID": "9876543210", "GITHUB_RUN_ATTEMPT": "2"}, "gh-9876543210-2"),
        ({"GITHUB_RUN_ID": "42"}, "gh-42-1"),
        (
            {"CIRCLE_WORKFLOW_ID": "5D0C1B0E-6f3a-4f0e-9c1c-000000000000", "CIRCLE_BUILD_NUM": "77"},
            "cci-5d0c1b0e-77",
        ),
        ({"CIRCLE_BUILD_NUM": "77"}, "cci-77"),
        ({"GITHUB_RUN_ID": "a/b c"}, "gh-a-b-c-1"),
    ],
)
def test_run_id(env: dict[str, str], expected: str):
    got = run_id(env)
    assert re.fullmatch(re.escape(expected) + "-[0-9a-f]{6}", got), got


def test_run_id_is_random_locally():
    first, second = run_id({}), run_id({})
    assert first != second
    assert len(first) == 6 and int(first, 16) >= 0


def test_raw_secrets_come_from_every_source():
    env = {"INPUT_REGISTRY-PASSWORD": "a", "PYCI_REGISTRY_PASSWORD": "b", "INPUT_REGISTRY_PASSWORD": ""}
    assert raw_secrets({"registry-password": "c"}, env) == ("c", "a", "b")


# --- any text at all: a Settings or an InputError, never a traceback ---
ENV_KEYS = sorted({name for spec in INPUTS for name in spec.env_names} | {"GITHUB_RUN_ID", "RUNNER_DEBUG"})


def test_loader_never_crashes_on_arbitrary_text(workspace: Path):
    seen = {"settings": 0, "invalid": 0}
    interesting = st.sampled_from(
        [
            "",
            " ",
            "0",
            "1",
            "true",
            "5m",
            "1h30m",
            "x=1",
            "job/a=1m",
            "ghcr.io/o/r",
            "kind",
            "a,b",
            "'",
            "\x00",
        ]
    )

    @hsettings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(ENV_KEYS), st.one_of(interesting, st.text()), max_size=12))
    def check(env: dict[str, str]) -> None:
        try:
            loaded = load_settings({}, env)
        except InputError as err:
            seen["invalid"] += 1
            lines = err.message.splitlines()
            assert lines and all(": " in line and "; allowed: " in line for line in lines)
            return
        seen["settings"] += 1
        assert isinstance(loaded, Settings)

    check()
    total = seen["settings"] + seen["invalid"]
    print(f"hypothesis: {total} examples ({seen['settings']} Settings, {seen['invalid']} InputError)")
    assert total >= 100
    assert seen["settings"] > 0 and seen["invalid"] > 0


def test_a_kind_config_that_is_not_yaml_is_caught_before_the_run(workspace: Path):
    (workspace / "bad.yaml").write_text("kind: Cluster\nnodes:\n  - role: [control-plane\n")
    (workspace / "list.yaml").write_text("- a\n- b\n")
    assert problems({"kind-config": "bad.yaml"}) == [
        "kind-config: 'bad.yaml' is not YAML (line 4); allowed: a path to an existing kind config file"]
    assert problems({"kind-config": "list.yaml"}) == [
        "kind-config: 'list.yaml' is not a kind Cluster config (a YAML mapping); "
        "allowed: a path to an existing kind config file"]


@pytest.mark.parametrize(("name", "raw", "why"), [
    # pyci runs as root in its image: permission bits say yes, the file system says no. Found up front.
    ("junit", "/proc/pyci-junit.xml", "cannot be created: '/proc' is not writable"),
    ("junit", "/sys/pyci/junit.xml", "cannot be created: '/sys' is not writable"),
    ("artifacts-dir", "/proc/pyci-artifacts", "cannot be created: '/proc' is not writable"),
    ("cache-dir", "/proc/pyci-cache", "cannot be created: '/proc' is not writable"),
])
def test_an_output_path_that_cannot_be_written_is_found_before_the_run(workspace: Path, name: str, raw: str,
                                                                       why: str):
    lines = problems(**{f"INPUT_{name.upper()}": raw})
    assert len(lines) == 1 and lines[0].startswith(f"{name}: ") and why in lines[0], lines


def test_probing_an_output_path_leaves_nothing(workspace: Path, tmp_path: Path):
    target = tmp_path / "reports"
    target.mkdir()
    found = load(None, INPUT_JUNIT=str(target / "junit.xml"), **{"INPUT_ARTIFACTS-DIR": str(target / "art")})
    assert found.junit == target / "junit.xml" and found.artifacts_dir == target / "art"
    assert list(target.iterdir()) == []


def test_a_cache_dir_that_is_a_file_is_one_line_and_nothing_is_created(workspace: Path, tmp_path: Path):
    (tmp_path / "file").write_text("x")
    lines = problems(**{"INPUT_CACHE-DIR": str(tmp_path / "file")})
    assert len(lines) == 1 and lines[0].startswith("cache-dir: '"), lines
    assert lines[0].endswith("' is a file, not a directory; "
                             "allowed: a directory path pyci can create or write")
    found = load(None, **{"INPUT_CACHE-DIR": str(tmp_path / "new" / "cache")})
    assert found.cache_dir == tmp_path / "new" / "cache" and not (tmp_path / "new").exists()
