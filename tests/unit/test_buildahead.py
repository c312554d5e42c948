"""pyci.buildahead without a daemon: tilt's context filter, the tar, the /build query, the plan, tilt's
cache-hit lines and the overlap arithmetic."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from pyci import buildahead, tiltfile
from pyci.buildahead import Built, ContextFilter, IgnoreDef, Profile, Target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(context: Path, keep: ContextFilter) -> list[str]:
    return [p.relative_to(context).as_posix() for p in buildahead.context_entries(context, keep)]


# --- the filter, as tilt builds it from contextIgnores ---
def test_dockerignore_patterns_leave_out_what_they_match_and_what_is_under_it(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"app.py": "", "debug.log": "", "build/out.o": "", "src/a.pyc": "",
                                  "src/deep/b.pyc": "", "src/keep.py": "", "notes/keep.log": ""})
    keep = ContextFilter([IgnoreDef(str(ctx), ("*.log", "build", "**/*.pyc", "!notes/keep.log"))])
    assert names(ctx, keep) == ["app.py", "notes", "notes/keep.log", "src", "src/deep", "src/keep.py"]


def test_only_is_everything_but_the_named_paths(tmp_path: Path) -> None:
    # tilt turns only=['src', 'requirements.txt'] into the patterns ** !src !requirements.txt
    ctx = tree(tmp_path / "ctx", {"src/main.py": "", "requirements.txt": "", "README.md": "",
                                  "docs/index.md": ""})
    keep = ContextFilter([IgnoreDef(str(ctx), ("**", "!src", "!requirements.txt"))])
    assert names(ctx, keep) == ["requirements.txt", "src", "src/main.py"]


def test_a_pattern_less_ignore_is_a_path_and_all_under_it(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"Tiltfile": "", "app.py": "", ".git/HEAD": "", ".gitx": ""})
    keep = ContextFilter([IgnoreDef(str(ctx / "Tiltfile")), IgnoreDef(str(ctx / ".git"))])
    assert names(ctx, keep) == [".gitx", "app.py"]


def test_a_directory_is_walked_when_an_exclusion_may_bring_something_back(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    keep = buildahead.PatternMatcher(str(ctx), ["vendor", "!vendor/keep"])
    assert keep.matches(str(ctx / "vendor")) and not keep.matches_entire_dir(str(ctx / "vendor"))
    globbed = buildahead.PatternMatcher(str(ctx), ["pkg", "!pkg/**/*.go"])
    assert not globbed.matches_entire_dir(str(ctx / "pkg"))
    plain = buildahead.PatternMatcher(str(ctx), ["vendor"])
    assert plain.matches_entire_dir(str(ctx / "vendor"))


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("/c/*.go", "/c/a.go", True), ("/c/*.go", "/c/x/a.go", False), ("/c/**/*.go", "/c/x/y/a.go", True),
    ("/c/a?c", "/c/abc", True), ("/c/a?c", "/c/a/c", False), ("/c/v1.0", "/c/v1x0", False),
    ("/c/dir", "/c/dir/any/file", True), ("/c/**", "/c/anything", True),
])
def test_pattern_translation_follows_tilts_dockerignore(pattern: str, path: str, hit: bool) -> None:
    assert bool(buildahead.pattern_regex(pattern).fullmatch(path)) is hit


def test_an_ill_formed_ignore_is_skipped_as_tilt_skips_it(tmp_path: Path) -> None:
    keep = ContextFilter([IgnoreDef(str(tmp_path), ("!",)), IgnoreDef(str(tmp_path), ("*.log",))])
    assert len(keep.matchers) == 1 and keep.excludes(str(tmp_path / "x.log"))


# --- the tar ---
def read_tar(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_context_tar_is_gnu_owned_by_root_and_reuses_the_dockerfile_it_holds(tmp_path: Path) -> None:
    dockerfile = "FROM base\nCOPY . /app\n"
    ctx = tree(tmp_path / "ctx", {"Dockerfile": dockerfile, "app.py": "print(1)\n", "x.log": "no"})
    (ctx / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(ctx / "run.sh", 0o755)
    os.symlink("app.py", ctx / "link.py")
    out = io.BytesIO()
    name = buildahead.write_context(ctx, ContextFilter([IgnoreDef(str(ctx), ("*.log",))]), dockerfile, out)
    data = out.getvalue()
    assert name == "Dockerfile"  # the context's own file: no extra file a `COPY . .` would copy
    # The daemon sniffs the first header to tell a tar from a Dockerfile: no PAX header first.
    first = tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    assert first.type not in (tarfile.XHDTYPE, tarfile.XGLTYPE)
    members = read_tar(data)
    assert sorted(members) == ["Dockerfile", "app.py", "link.py", "run.sh"]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}
    assert members["run.sh"].mode & 0o777 == 0o755
    assert members["link.py"].issym() and members["link.py"].linkname == "app.py"


def test_a_dockerfile_not_in_the_context_is_added_under_a_name_of_its_own(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"Dockerfile": "FROM other\n", buildahead.SIDE_DOCKERFILE: "taken"})
    out = io.BytesIO()
    name = buildahead.write_context(ctx, ContextFilter([]), "FROM base\n", out)
    assert name not in ("Dockerfile", buildahead.SIDE_DOCKERFILE)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None and extracted.read() == b"FROM base\n"


def test_a_long_path_fits_in_the_tar(tmp_path: Path) -> None:
    deep = "/".join(["d" * 60] * 6) + "/file.txt"
    ctx = tree(tmp_path / "ctx", {deep: "x"})
    out = io.BytesIO()
    buildahead.write_context(ctx, ContextFilter([]), "FROM base\n", out)
    assert deep in read_tar(out.getvalue())


# --- the query ---
def test_build_args_are_tilts_list_as_a_map_with_bare_keys_null() -> None:
    assert buildahead.build_args(["A=1", "B=", "C", "D=x=y"]) == {"A": "1", "B": "", "C": None, "D": "x=y"}


def test_build_params_ask_for_buildkit_with_tilts_options() -> None:
    target = Target("api", "/ctx", "FROM x\n", ("BASE=b",), target="prod", platform="linux/amd64",
                    network="host", extra_hosts=("db:10.0.0.1",), pull=True)
    params = buildahead.build_params(target, "pyci-ahead/r1:1-api", "Dockerfile", "r1")
    assert params["version"] == "2" and params["t"] == "pyci-ahead/r1:1-api"
    assert json.loads(params["buildargs"]) == {"BASE": "b"}
    assert (params["target"], params["platform"], params["networkmode"]) == ("prod", "linux/amd64", "host")
    assert params["extrahosts"] == "db:10.0.0.1" and params["pull"] == "1"
    assert json.loads(params["labels"]) == {"io.pyci.managed": "true", "io.pyci.run": "r1"}
    plain = buildahead.build_params(Target("w", "/c", ""), "t", "Dockerfile", "r1")
    assert not {"target", "platform", "networkmode", "extrahosts", "pull"} & set(plain)


def test_throwaway_tags_are_valid_references_of_the_run() -> None:
    assert buildahead.throwaway_tag("gh-42-1-abc", 3, "gcr.io/team/API:v1") == "pyci-ahead/gh-42-1-abc:3-api"
    assert buildahead.throwaway_tag("r", 1, "...") == "pyci-ahead/r:1-image"


def test_dependencies_are_pointed_at_the_images_built_ahead() -> None:
    dockerfile = "FROM base AS b\nFROM --platform=linux/amd64 base\nCOPY --from=base /x /x\nFROM basement\n"
    out = buildahead.rewrite_deps(dockerfile, {"base": "pyci-ahead/r:1-base"})
    assert out == ("FROM pyci-ahead/r:1-base AS b\nFROM --platform=linux/amd64 pyci-ahead/r:1-base\n"
                   "COPY --from=pyci-ahead/r:1-base /x /x\nFROM basement\n")


def test_waves_build_dependencies_first() -> None:
    base, other = Target("base", "/b", ""), Target("o", "/o", "")
    app = Target("app", "/a", "", deps=("base",))
    assert [[t.ref for t in w] for w in buildahead.waves([app, base, other])] == [["base", "o"], ["app"]]
    loop = [Target("x", "", "", deps=("y",)), Target("y", "", "", deps=("x",))]
    assert [[t.ref for t in w] for w in buildahead.waves(loop)] == [["x", "y"]]


# --- the plan, from tilt's real output ---
def test_targets_come_from_the_tiltfile_result_each_once() -> None:
    raw = json.loads((FIXTURES / "tiltfile-result-hello.json").read_text())
    found, skipped = buildahead.targets(raw)
    assert [t.ref for t in found] == ["hello-api", "hello-web"] and skipped == []
    api = found[0]
    assert api.context == "/repo/examples/hello/api"
    assert api.build_args == ("BASE_IMAGE=pyci-lab/base:latest",)
    assert api.ignores == (IgnoreDef("/repo/examples/hello/Tiltfile"),)
    assert "COPY server.py" in api.dockerfile_contents


def test_custom_builds_and_session_needs_are_not_built_ahead() -> None:
    raw = {"Manifests": [{"ImageTargets": [
        {"selector": "custom", "BuildDetails": {"command": ["make"]}},
        {"selector": "secret", "BuildDetails": {"context": "/c", "dockerfileContents": "FROM x",
                                                 "secrets": ["id=npm"]}},
    ]}]}
    found, skipped = buildahead.targets(raw)
    assert skipped == ["custom"] and found[0].needs_session == "secrets"


def test_nothing_is_planned_when_the_tiltfile_was_not_read_ahead() -> None:
    assert buildahead.plan(None) is None
    assert buildahead.plan(tiltfile.Evaluation(0.1, unavailable="tilt not found")) is None
    assert buildahead.plan(tiltfile.Evaluation(0.1, error=tiltfile.TiltfileError("boom"))) is None
    raw = json.loads((FIXTURES / "tiltfile-result-hello.json").read_text())
    planned = buildahead.plan(tiltfile.parse_result(raw))
    assert planned is not None and [t.ref for t in planned[0]] == ["hello-api", "hello-web"]


# --- tilt's log and the profile ---
TILT_LOG = """\
     api │ Building Dockerfile for platform linux/amd64:
     api │   FROM pyci-lab/base:latest
     api │   COPY server.py /app/server.py
     api │      [1/2] FROM docker.io/pyci-lab/base:latest
     api │      [background] read source files 57B [done: 37ms]
     api │      [2/2] COPY server.py /app/server.py [cached]
   multi │      [build 3/3] RUN echo hi > /src/greeting [cached]
   multi │      [final 2/2] COPY --from=build /src /src
   multi │      [final 2/2] COPY --from=build /src /src [done: 75ms]
"""


def test_cache_hits_count_the_steps_tilt_shows_cached() -> None:
    hits = buildahead.cache_hits(TILT_LOG)
    # tilt prints a step again when it is done: a step counts once.
    assert (hits.cached, hits.steps) == (2, 3)
    assert hits.lines[0] == "api │      [2/2] COPY server.py /app/server.py [cached]"


def test_overlap_is_build_time_inside_the_cluster_boot() -> None:
    profile = Profile(built=[Built("a", "t1", started=10, ended=14), Built("b", "t2", started=12, ended=20),
                             Built("c", "t3", started=30, ended=31, error="boom")],
                      started=10, ended=31, boot_started=9, boot_ended=18)
    assert profile.overlap == pytest.approx(8.0)  # 10..18, the two builds' union cut at the boot's end
    text = profile.describe()
    assert "2/3 images built ahead" in text and "8.0s of it during the 9.0s cluster boot" in text


def test_stream_error_finds_the_daemons_error_and_skips_progress() -> None:
    ok: list[dict[str, object]] = [{"id": "moby.buildkit.trace", "aux": "AAA="}, {"aux": {"ID": "sha256:1"}}]
    assert buildahead.stream_error(ok) is None
    failed: list[dict[str, object]] = [
        *ok, {"errorDetail": {"message": "COPY failed: x not found"}, "error": "COPY failed"}]
    assert buildahead.stream_error(failed) == "COPY failed: x not found"


# --- the repository tilt pushes to, so that its push finds the layers pushed ahead ---
@pytest.mark.parametrize(("ref", "repository"), [
    ("shop-cart", "localhost:5001/shop-cart"),
    ("shop-cart:dev", "localhost:5001/shop-cart"),
    ("docker.io/library/app", "localhost:5001/app"),
    ("docker.io/acme/app", "localhost:5001/acme_app"),
    ("gcr.io/acme/app@sha256:" + "0" * 64, "localhost:5001/gcr.io_acme_app"),
    ("localhost:5001/already/there", "localhost:5001/already/there"),  # tilt leaves those as they are
])
def test_registry_repository_is_tilts_name_for_the_ref(ref: str, repository: str) -> None:
    assert buildahead.registry_repository("localhost:5001", ref) == repository


def test_profile_says_what_was_pushed_ahead() -> None:
    profile = Profile(pushed=["localhost:5001/a:pyci-ahead", "localhost:5001/b:pyci-ahead"],
                      push_seconds=3.25, push_errors=["c"])
    said = "2 pushed to the registry in 3.2s (tilt's pushes find their layers there), 1 not"
    assert said in profile.describe()
