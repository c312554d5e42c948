"""On failure: one folder that explains it — events, the failing objects, their pods' logs,
the tilt snapshot and kind's own logs. Every text goes through a redactor first.
"""

from __future__ import annotations

import base64
import binascii
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from pyci.readiness import SYSTEM_NAMESPACES, controller_of
from pyci.results import ResourceResult

Log = Callable[[str], None]
MASK = "***"
REQUEST_TIMEOUT = 20.0
KIND_EXPORT_TIMEOUT = 180.0
LOG_TAIL = 500
_MIN_SECRET_LEN = 3  # masking "a" everywhere would make the bundle unreadable
# Values a Secret may hold that are words of YAML itself: masked, `controller: true` in every pod's YAML
# became `controller: ***` (kind's bootstrap token Secret holds `true`), and the bundle did not parse.
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "none"})

_KIND_READERS = {
    "deployment": ("apps", "read_namespaced_deployment"),
    "statefulset": ("apps", "read_namespaced_stateful_set"),
    "daemonset": ("apps", "read_namespaced_daemon_set"),
    "replicaset": ("apps", "read_namespaced_replica_set"),
    "job": ("batch", "read_namespaced_job"),
    "pod": ("core", "read_namespaced_pod"),
}


def _nolog(_: str) -> None:
    pass


class Redactor:
    """Replaces every secret string (and its base64 form) with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """A secret the user named: masked whatever it looks like (only Secret data spares YAML words)."""
        if not secret or len(secret) < _MIN_SECRET_LEN:
            return
        self._secrets.add(secret)
        for line in secret.splitlines():
            if len(line.strip()) >= _MIN_SECRET_LEN:
                self._secrets.add(line.strip())
        self._secrets.add(base64.b64encode(secret.encode()).decode())

    def add_secret_data(self, data: Mapping[str, str] | None) -> None:
        """The values of a Kubernetes Secret's `data` (base64) — both encoded and decoded forms."""
        for value in (data or {}).values():
            if not value:
                continue
            self.add(value)
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                continue
            if decoded.strip().lower() not in _YAML_WORDS:
                self.add(decoded)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first
            text = text.replace(secret, MASK)
        return text


def parse_target(name: str) -> tuple[str, str, str] | None:
    """`deployment/default/web` -> ("deployment", "default", "web"); tilt resource names -> None."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0].lower() not in _KIND_READERS:
        return None
    return parts[0].lower(), parts[1], parts[2]


def event_time(event: Mapping[str, Any]) -> str:
    meta = event.get("metadata") or {}
    for value in (event.get("lastTimestamp"), event.get("eventTime"), meta.get("creationTimestamp")):
        if value:
            return str(value)
    return ""


def format_events(events: Iterable[Mapping[str, Any]]) -> str:
    """Events as lines sorted by time: `TIME TYPE REASON KIND/NAMESPACE/NAME (xCOUNT): MESSAGE`."""
    lines = []
    for ev in sorted(events, key=event_time):
        obj = ev.get("involvedObject") or {}
        count = ev.get("count") or 1
        where = f"{obj.get('kind', '?')}/{obj.get('namespace') or '-'}/{obj.get('name', '?')}"
        message = " ".join(str(ev.get("message") or "").split())
        lines.append(
            f"{event_time(ev)} {ev.get('type', '')} {ev.get('reason', '')} {where}"
            + (f" (x{count})" if count and int(count) > 1 else "")
            + f": {message}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def strip_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without managedFields and the last-applied annotation; Secrets lose their values."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    if out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if out.get(key):
                out[key] = dict.fromkeys(out[key], MASK)
    return out


def object_filename(kind: str, namespace: str, name: str) -> str:
    return f"{kind.lower()}-{namespace}-{name}.yaml"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class _Bundle:
    def __init__(self, out_dir: Path, redact: Redactor, log: Log) -> None:
        self.out_dir, self.redact, self.log = out_dir, redact, log

    def write(self, relative: str, text: str) -> Path:
        path = self.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.redact(text), encoding="utf-8")
        return path


def _serialize(api_client: client.ApiClient, obj: Any) -> dict[str, Any]:
    data = api_client.sanitize_for_serialization(obj)
    return data if isinstance(data, dict) else {}


def _apis(api_client: client.ApiClient) -> dict[str, Any]:
    return {
        "apps": client.AppsV1Api(api_client),
        "batch": client.BatchV1Api(api_client),
        "core": client.CoreV1Api(api_client),
    }


def _read(apis: Mapping[str, Any], kind: str, namespace: str, name: str) -> Any:
    group, method = _KIND_READERS[kind]
    return getattr(apis[group], method)(name, namespace, _request_timeout=REQUEST_TIMEOUT)


def _pods_of(
    api_client: client.ApiClient, apis: Mapping[str, Any], obj: dict[str, Any]
) -> list[dict[str, Any]]:
    """The pods a workload owns: by its selector, then kept when the owner chain leads back to it."""
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    if kind == "Pod":
        return [obj]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = apis["core"].list_namespaced_pod(
        namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
    )
    replicasets: set[str] = set()
    if kind == "Deployment":
        rs_list = apis["apps"].list_namespaced_replica_set(
            namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        )
        for rs in rs_list.items or []:
            owner = controller_of(_serialize(api_client, rs))
            if owner == ("Deployment", name):
                replicasets.add(str(rs.metadata.name))
    out = []
    for pod in pods.items or []:
        data = _serialize(api_client, pod)
        owner = controller_of(data)
        if owner == (kind, name) or (owner and owner[0] == "ReplicaSet" and owner[1] in replicasets):
            out.append(data)
    return out


def _write_logs(core: client.CoreV1Api, bundle: _Bundle, pod: dict[str, Any]) -> None:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    restarted = {
        cs.get("name")
        for cs in ((pod.get("status") or {}).get("containerStatuses") or [])
        + ((pod.get("status") or {}).get("initContainerStatuses") or [])
        if int(cs.get("restartCount") or 0) > 0
    }
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cname = container.get("name", "")
        for previous in (False, True) if cname in restarted else (False,):
            try:
                text = core.read_namespaced_pod_log(
                    name,
                    namespace,
                    container=cname,
                    previous=previous,
                    tail_lines=LOG_TAIL,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except Exception as exc:  # no kubelet (or no previous container): say so in the bundle
                text = f"(no log: {getattr(exc, 'reason', None) or exc})\n"
            suffix = ".previous.log" if previous else ".log"
            bundle.write(f"logs/{_safe(name)}-{_safe(cname)}{suffix}", str(text or ""))


def _collect_secret_values(
    core: client.CoreV1Api, namespaces: Sequence[str], redact: Redactor, log: Log
) -> None:
    """Every Secret's data joins the redactor, so a value echoed in a log or an env var is masked."""
    try:
        if namespaces:
            items: list[Any] = []
            for ns in namespaces:
                items += core.list_namespaced_secret(ns, _request_timeout=REQUEST_TIMEOUT).items or []
        else:
            found = core.list_secret_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items or []
            # the system namespaces' Secrets (bootstrap tokens, the cluster's own) are not the app's
            items = [s for s in found if getattr(s.metadata, "namespace", "") not in SYSTEM_NAMESPACES]
    except Exception as exc:
        log(f"diagnostics: cannot list secrets to mask them ({exc}); pod logs may contain secret values")
        return
    for secret in items:
        redact.add_secret_data({k: str(v) for k, v in (secret.data or {}).items()})
        for value in (secret.string_data or {}).values():
            redact.add(str(value))


def _events(core: client.CoreV1Api, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    api_client = core.api_client
    if namespaces:
        items: list[Any] = []
        for ns in namespaces:
            items += core.list_namespaced_event(ns, _request_timeout=REQUEST_TIMEOUT).items or []
    else:
        items = core.list_event_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items or []
    out = [_serialize(api_client, ev) for ev in items]
    if not namespaces:
        out = [e for e in out if (e.get("metadata") or {}).get("namespace") not in SYSTEM_NAMESPACES]
    return out


def kind_export_logs(kind_cluster: str, dest: Path, log: Log, kind_bin: str = "kind") -> bool:
    try:
        proc = subprocess.run(
            [kind_bin, "export", "logs", str(dest), "--name", kind_cluster],
            capture_output=True,
            text=True,
            timeout=KIND_EXPORT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"diagnostics: kind export logs failed: {exc}")
        return False
    if proc.returncode != 0:
        log(f"diagnostics: kind export logs failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
        return False
    return True


def _redact_tree(folder: Path, redact: Redactor) -> None:
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        cleaned = redact(text)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")


def collect(
    api_client: client.ApiClient,
    out_dir: Path,
    failing: Sequence[ResourceResult],
    namespaces: Sequence[str],
    snapshot: Path | None,
    kind_cluster: str | None,
    secrets: Sequence[str] = (),
    log: Log = _nolog,
    kind_bin: str = "kind",
) -> Path:
    """Write the diagnostics bundle into `out_dir` and return it. Never raises for a missing part."""
    out_dir.mkdir(parents=True, exist_ok=True)
    redact = Redactor(secrets)
    bundle = _Bundle(out_dir, redact, log)
    apis = _apis(api_client)
    core: client.CoreV1Api = apis["core"]
    _collect_secret_values(core, namespaces, redact, log)

    try:
        bundle.write("events.txt", format_events(_events(core, namespaces)))
    except Exception as exc:
        log(f"diagnostics: cannot list events: {exc}")
        bundle.write("events.txt", f"(cannot list events: {exc})\n")

    summary = []
    for result in failing:
        summary.append(f"{result.name}: {result.reason or 'failed'}: {result.message or ''}".rstrip(": "))
        target = parse_target(result.name)
        if target is None:
            continue
        kind, namespace, name = target
        try:
            obj = _serialize(api_client, _read(apis, kind, namespace, name))
        except Exception as exc:
            log(f"diagnostics: cannot read {result.name}: {getattr(exc, 'reason', None) or exc}")
            continue
        bundle.write(f"objects/{object_filename(kind, namespace, name)}", to_yaml(obj, redact))
        try:
            pods = _pods_of(api_client, apis, obj)
        except Exception as exc:
            log(f"diagnostics: cannot list pods of {result.name}: {exc}")
            pods = []
        for pod in pods:
            pmeta = pod.get("metadata") or {}
            if kind != "pod":
                filename = object_filename("pod", pmeta.get("namespace", ""), pmeta.get("name", ""))
                bundle.write(f"objects/{filename}", to_yaml(pod, redact))
            _write_logs(core, bundle, pod)
    bundle.write("failing.txt", "\n".join(summary) + ("\n" if summary else ""))

    if snapshot is not None and snapshot.is_file():
        try:
            bundle.write(snapshot.name, snapshot.read_text(encoding="utf-8"))
        except OSError as exc:
            log(f"diagnostics: cannot copy the tilt snapshot: {exc}")
    if kind_cluster:
        dest = out_dir / "kind-logs"
        if kind_export_logs(kind_cluster, dest, log, kind_bin):
            _redact_tree(dest, redact)
        elif dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
    log(f"diagnostics: bundle written to {out_dir}")
    return out_dir


def redact_data(data: Any, redact: Callable[[str], str]) -> Any:
    """Every string in a JSON-like structure redacted (so the YAML written from it stays valid)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {k: redact_data(v, redact) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_data(v, redact) for v in data]
    return data


def to_yaml(obj: Mapping[str, Any], redact: Callable[[str], str]) -> str:
    return yaml.safe_dump(redact_data(strip_object(obj), redact), sort_keys=False, default_flow_style=False)
