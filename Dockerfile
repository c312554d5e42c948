# pyci: Python entrypoint + kind, kubectl, tilt, the docker CLI and socat, at the versions pinned in
# entrypoint/pyci/versions.env.
#
#   docker build -t pyci .                                   # release: downloads, sha256-verified
#   tools/build-image                                        # offline lab variant (see that script)
#
# Build args:
#   BASE_IMAGE  the Python 3.11 runtime (default python:3.11-slim-bookworm; the lab: pyci-lab/base:latest)
#   TOOLS       download: fetch the release files named in versions.env and check their SHA256
#               context:  take prebuilt files from .prebuilt/ in the build context instead:
#                         .prebuilt/bin/{kind,kubectl,tilt,docker}, .prebuilt/debs/*.deb (socat, libwrap0),
#                         .prebuilt/wheels/*.whl (pyci-action, its dependencies and pip itself)
#
# Every stage works with the legacy builder (Docker 20.10 without BuildKit builds every stage, so the
# tool source is chosen inside one RUN, not by picking a stage), and with buildx for multi-arch
# releases (TARGETARCH; the legacy builder leaves it empty and dpkg names the build machine's arch).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- tools: every bundled binary under /out, so the runtime stage takes them in one layer ----------
FROM ${BASE_IMAGE} AS tools
ARG TOOLS=download
ARG TARGETARCH
# The wildcard lets the build go on when .prebuilt/ is absent (a release build from a plain checkout).
COPY entrypoint/pyci/versions.env .prebuil[t] /build/
RUN set -eu; \
    . /build/versions.env; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) tilt_arch=x86_64; docker_arch=x86_64; SUFFIX=AMD64 ;; \
      arm64) tilt_arch=arm64; docker_arch=aarch64; SUFFIX=ARM64 ;; \
      *) echo "pyci image: unsupported architecture $arch (amd64 and arm64 are)" >&2; exit 1 ;; \
    esac; \
    mkdir -p /out/usr/local/bin /dl; \
    # fetch NAME URL SHA: python's urllib, because the slim base has no curl and we add nothing for it.
    fetch() { \
      if [ "$3" = UNKNOWN ]; then \
        echo "pyci image: no published SHA256 for $1 ($arch) in versions.env; refusing to download $2 unverified" >&2; \
        exit 1; \
      fi; \
      python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$2" "/dl/$1"; \
      echo "$3  /dl/$1" | sha256sum -c -; \
    }; \
    sha() { eval "echo \${$1_SHA256_$SUFFIX}"; }; \
    if [ "$TOOLS" = download ]; then \
      fetch kind "https://github.com/kubernetes-sigs/kind/releases/download/$KIND_VERSION/kind-linux-$arch" "$(sha KIND)"; \
      fetch kubectl "https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/$arch/kubectl" "$(sha KUBECTL)"; \
      fetch tilt.tgz "https://github.com/tilt-dev/tilt/releases/download/$TILT_VERSION/tilt.${TILT_VERSION#v}.linux.$tilt_arch.tar.gz" "$(sha TILT)"; \
      fetch docker.tgz "https://download.docker.com/linux/static/stable/$docker_arch/docker-$DOCKER_CLI_VERSION.tgz" "$(sha DOCKER_CLI)"; \
      install -m 0755 /dl/kind /dl/kubectl /out/usr/local/bin/; \
      tar -xzf /dl/tilt.tgz -C /out/usr/local/bin tilt; \
      # Only the client: pyci talks to the runner's (or a remote) daemon, it never runs one.
      tar -xzf /dl/docker.tgz -C /out/usr/local/bin --strip-components 1 docker/docker; \
      apt-get update -q; \
      (cd /dl && apt-get download -q socat libwrap0); \
      rm -rf /var/lib/apt/lists/*; \
    elif [ "$TOOLS" = context ]; then \
      for tool in kind kubectl tilt docker; do \
        [ -x "/build/bin/$tool" ] || { echo "pyci image: TOOLS=context but .prebuilt/bin/$tool is missing" >&2; exit 1; }; \
        install -m 0755 "/build/bin/$tool" /out/usr/local/bin/; \
      done; \
      cp /build/debs/*.deb /dl/; \
    else \
      echo "pyci image: TOOLS must be download or context, not '$TOOLS'" >&2; exit 1; \
    fi; \
    # socat (remote-daemon forwarders) from Debian: unpacked, not installed, so the runtime stage needs
    # neither apt lists nor dpkg state. Its other libraries (libc6, libssl3) are in every Python base.
    for deb in /dl/*.deb; do dpkg-deb -x "$deb" /out; done; \
    rm -rf /out/usr/share/doc /out/usr/share/man /out/etc; \
    ls -l /out/usr/local/bin /out/usr/bin/socat

# --- python: pyci-action and its dependencies, laid out under /out as they go into the runtime --------
FROM ${BASE_IMAGE} AS python
COPY pyproject.toml /src/
COPY entrypoint/ /src/entrypoint/
# pyproject.toml only keeps COPY from failing when .prebuilt/ is absent (no source would match).
COPY pyproject.toml .prebuil[t]/wheel[s] /wheels/
RUN set -eu; \
    if ls /wheels/pyci_action-*.whl >/dev/null 2>&1; then \
      # Offline: everything from the wheels folder; pip runs from its own wheel (the lab base has none).
      pip_wheel=$(ls /wheels/pip-*.whl | head -n 1); \
      set -- python3 "$pip_wheel/pip" install --no-index --find-links /wheels pyci-action; \
    else \
      set -- python3 -m pip install /src; \
    fi; \
    # --no-compile: the .pyc files would add ~34 MB for ~1 s less start-up once per CI job.
    "$@" --prefix /install --no-compile --no-warn-script-location --disable-pip-version-check --root-user-action=ignore; \
    # pip's --prefix layout (lib/pythonX.Y/site-packages) is not the base's own: Debian's python reads
    # /usr/local/lib/python3.11/dist-packages, python:slim /usr/local/lib/python3.11/site-packages.
    site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    mkdir -p "/out$site" /out/usr/local; \
    mv /install/lib/python3*/site-packages/* "/out$site/"; \
    mv /install/bin /out/usr/local/bin; \
    # kubernetes >= 37 ships a second, asyncio copy of every API model (kubernetes/aio, ~70 MB) that
    # pyci never imports; test suites inside dependencies are dead weight too.
    rm -rf "/out$site/kubernetes/aio"; \
    find "/out$site" -depth -type d -name tests -exec rm -rf {} +; \
    PYTHONPATH="/out$site" python3 -c 'import pyci.cli, kubernetes.client, docker, jsonschema, yaml'; \
    head -n 1 /out/usr/local/bin/pyci

# --- runtime ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="pyci-action" \
      org.opencontainers.image.description="Proves a Tilt app starts on a fresh cluster: kind + local registry + tilt ci + readiness watch" \
      org.opencontainers.image.source="https://github.com/pyci-action/pyci-action" \
      org.opencontainers.image.url="https://github.com/pyci-action/pyci-action" \
      org.opencontainers.image.documentation="https://github.com/pyci-action/pyci-action#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="pyci-action" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=tools /out/ /
COPY --from=python /out/ /
# Unbuffered: the log must stream into the CI console as tilt and the readiness watch progress.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The runtime runs as root: it must use the Docker socket that GitHub and `docker run -v` mount, whose
# group differs on every host. docker run users mount their project here; GitHub sets its own workdir.
WORKDIR /workspace
# `pyci` with no arguments (how GitHub starts a docker action) or with only run flags is `pyci run`;
# an explicit subcommand (`docker run IMAGE version`, `... doctor`, `... run --dry-run`) also works,
# which an ENTRYPOINT of ["pyci", "run"] would turn into `pyci run version`, an error.
ENTRYPOINT ["pyci"]
