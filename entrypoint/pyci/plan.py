"""`pyci run --dry-run`: what a run would do, with names and ports, from the settings alone."""

from __future__ import annotations

import os

from pyci import platforms
from pyci.results import format_duration
from pyci.settings import Settings


def plan(settings: Settings, platform: platforms.Platform) -> list[str]:
    """What `run` would do, with names and ports; reads nothing but the settings."""
    lines = [
        "pyci run --dry-run: nothing is created",
        f"  platform      {platform.name} (run id {settings.run_id}, topology {settings.topology})",
        f"  tiltfile      {settings.tiltfile_path}",
        *_plan_cluster(settings),
        *_plan_registry(settings),
        "  build ahead   " + _plan_build_ahead(settings),
        "  cache         " + _plan_cache(settings),
        f"  tilt          tilt ci --timeout {max(1, round(settings.timeout))}s"
        + (f" -- {' '.join(settings.tilt_args)}" if settings.tilt_args else ""),
        *_plan_readiness(settings),
        f"  reports       junit {settings.junit}, artifacts {settings.artifacts_dir}"
        + (", step summary" if settings.summary else ""),
        "  cleanup       "
        + ("keep everything (keep-cluster)" if settings.keep_cluster else "remove what this run created"),
    ]
    return lines


def tiltfile_plan(settings: Settings) -> list[str]:
    """What the preflight reads in the Tiltfile (`tilt alpha tiltfile-result`: its local() calls run)."""
    from pyci import tiltfile

    found = tiltfile.evaluate(settings.tiltfile_path.resolve(), settings.tilt_args)
    if found.unavailable:
        return [f"  preflight     Tiltfile not read ahead: {found.unavailable}"]
    if found.error:
        where = f"{found.error.location}: " if found.error.location else ""
        return [f"  preflight     Tiltfile error: {where}{found.error.message}"]
    lines = [f"  preflight     {len(found.components)} components, {len(found.images)} images "
             f"(read in {found.seconds:.2f}s)"]
    for c in found.components:
        what = ", ".join(c.objects) or ("local resource" if c.local else "nothing deployed")
        built = f"; builds {', '.join(c.images)}" if c.images else ""
        lines.append(f"    component   {c.name}: {what}{built}")
    for image in found.images:
        how = "custom_build" if image.custom else f"docker_build {image.context}"
        target = f", target {image.target}" if image.target else ""
        lines.append(f"    image       {image.ref} ({how}{target})")
    lines += [f"    pulls       {ref}" for ref in found.third_party_images]
    return lines


def _plan_cluster(settings: Settings) -> list[str]:
    if settings.cluster == "existing":
        kubeconfig = settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return [f"  cluster       existing cluster from kubeconfig {kubeconfig}"]
    name = settings.cluster_name
    image = settings.kind_node_image or "kind's default node image"
    if settings.kubernetes_version:
        image += (f" (node-image wins over kubernetes-version {settings.kubernetes_version})"
                  if settings.node_image else f" for Kubernetes {settings.kubernetes_version}")
    merged = f", merged with {settings.kind_config}" if settings.kind_config else ""
    return [
        f"  cluster       kind cluster {settings.cluster_name} ({image}{merged})",
        f"                node container {name}-control-plane, kube context kind-{name}",
        "                first the host's limits: inotify, free disk, Docker version, cgroup v1",
    ]


def _plan_registry(settings: Settings) -> list[str]:
    if settings.registry == "none":
        return ["  registry      none"]
    if settings.remote_registry:
        login = f" as {settings.registry_username}" if settings.registry_username else " without login"
        return [f"  registry      remote {settings.registry}/{settings.run_id}{login}"]
    port = "a free port" if settings.registry_port == 0 else str(settings.registry_port)
    return [
        f"  registry      container {_registry_name(settings.cluster_name)} ({settings.registry_image}) "
        f"on 127.0.0.1:{port}, pushes to localhost:{port}"
    ]


def _registry_name(cluster_name: str) -> str:
    try:
        from pyci.registry import registry_name
    except Exception:  # noqa: BLE001 - the plan must print even when a stage module cannot import
        return f"{cluster_name}-registry"
    return registry_name(cluster_name)


def _plan_build_ahead(settings: Settings) -> str:
    if not settings.build_ahead:
        return ("off (build-ahead: false); third-party images the daemon has are still loaded into "
                "the nodes")
    if settings.cluster != "kind":
        return "not used: no cluster boot to overlap (cluster: existing)"
    return ("the Tiltfile's images while the cluster boots; third-party images loaded into the nodes "
            "(throwaway tags pyci-ahead/<run id>, removed)")


def _plan_cache(settings: Settings) -> str:
    if settings.cache_dir is None:
        return "none (cache-dir not set)"
    if settings.cluster != "kind" or not settings.build_ahead:
        return f"{settings.cache_dir}: not used (only build-ahead on kind uses it)"
    return (f"{settings.cache_dir} (at most {settings.cache_size / 1024**3:.1f} GiB): layers of the images "
            "built ahead restored and saved; third-party images through a mirror container per upstream "
            f"({settings.cluster_name}-mirror-<n>, removed)")


def _plan_readiness(settings: Settings) -> list[str]:
    if not settings.wait:
        return ["  readiness     skipped (wait: false)"]
    where = ", ".join(settings.namespaces) if settings.namespaces else "every namespace but the system ones"
    lines = [
        f"  readiness     wait up to {format_duration(settings.wait_timeout)} in {where}, "
        f"fail after {settings.max_restarts} restarts"
    ]
    lines += [
        f"                {k} up to {format_duration(v)}"
        for k, v in settings.readiness_timeouts.items()
    ]
    return lines


# --- doctor and version ---
