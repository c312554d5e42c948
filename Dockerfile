# pyci: Python entrypoint + kind, kubectl, tilt, the docker CLI and socat, at the versions pinned in
# entrypoint/pyci/versions.env, in a FROM scratch runtime (see entrypoint/image/rootfs.py).
#
#   docker build -t pyci .                                   # release: downloads, sha256-verified
#   tools/build-image                                        # offline lab variant (see that script)
#
# Build args:
#   BASE_IMAGE  a Debian-based Python 3.11 the runtime takes its interpreter and libraries from
#               (default python:3.11-slim-bookworm; the lab: pyci-lab/base:latest, pyci-lab/base-arm64)
#   BUILD_BASE_IMAGE  the same for the build machine's platform (the tilt-source stage)
#   Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 (release.yml). Where versions.env
#   says TILT_SHA256_<ARCH>=SOURCE, tilt is built from source in the tilt-source stage.
#   TOOLS       download: fetch kind, kubectl and tilt and check their SHA256 from versions.env; the
#                         docker CLI, socat and busybox come from apt (Docker's repository, key
#                         fingerprint pinned in versions.env, and Debian's)
#               context:  take prebuilt files from .prebuilt/ in the build context instead:
#                         .prebuilt/bin/{kind,kubectl,tilt,docker},
#                         .prebuilt/debs/*.deb (socat, libwrap0, busybox-static),
#                         .prebuilt/wheels/*.whl (pyci-action, its dependencies and pip itself)
#
# Every stage works with the legacy builder (Docker 20.10 without BuildKit builds every stage, so the
# tool source is chosen inside one RUN, not by picking a stage), and with buildx for multi-arch
# releases (TARGETARCH; the legacy builder leaves it empty and dpkg names the build machine's arch).

ARG BASE_IMAGE=python:3.11-slim-bookworm
# The build machine's platform: buildx sets it; the legacy builder does not, hence the default.
ARG BUILDPLATFORM=linux/amd64
# BUILD_BASE_IMAGE: the base of the tilt-source stage, which runs on the build machine (the lab passes
# its amd64 base while BASE_IMAGE is the arm64 one).
ARG BUILD_BASE_IMAGE=python:3.11-slim-bookworm

# --- tilt-source: tilt built from its tag's source where versions.env says SOURCE (linux/arm64) --------
# On the build machine, cross-compiling (no emulation): entrypoint/pyci/build-tilt.sh with the pinned Go
# (from the module proxy, h1-checked), tilt's module h1-checked, its dependencies against its go.sum.
# Any other platform, or TOOLS=context, leaves /out empty (the legacy builder runs every stage).
FROM --platform=${BUILDPLATFORM} ${BUILD_BASE_IMAGE} AS tilt-source
ARG TOOLS=download
ARG TARGETARCH
COPY entrypoint/pyci/versions.env entrypoint/pyci/build-tilt.sh /build/
# A build machine behind a TLS-inspecting proxy: its CA bundle as .prebuilt/ca-certificates.crt
# (public certificates; they stay in this stage, the image takes only /out). pyproject.toml keeps the
# COPY from failing when there is none.
COPY pyproject.toml .prebuil[t]/ca-certificates.cr[t] /build/ca/
RUN set -eu; mkdir -p /out; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    suffix=$(echo "$arch" | tr a-z A-Z); \
    if [ "$TOOLS" = download ] && grep -qx "TILT_SHA256_$suffix=SOURCE" /build/versions.env; then \
      if [ -s /build/ca/ca-certificates.crt ]; then export SSL_CERT_FILE=/build/ca/ca-certificates.crt; fi; \
      apt-get update -q; \
      case "$(dpkg --print-architecture):$arch" in \
        amd64:arm64) cc="gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
        arm64:amd64) cc="gcc-x86-64-linux-gnu g++-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
        *) cc="gcc g++ libc6-dev" ;; \
      esac; \
      apt-get install -q -y --no-install-recommends $cc >/dev/null; \
      HOME=/tmp sh /build/build-tilt.sh --arch "$arch" --out /out/tilt; \
      rm -rf /tmp/* /root/go /var/lib/apt/lists/*; \
    fi

# --- tools: every bundled binary under /out, so the runtime stage takes them in one layer ----------
FROM ${BASE_IMAGE} AS tools
ARG TOOLS=download
ARG TARGETARCH
# The wildcard lets the build go on when .prebuilt/ is absent (a release build from a plain checkout).
COPY entrypoint/pyci/versions.env .prebuil[t] /build/
COPY --from=tilt-source /out/ /build/tilt-source/
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
      if [ "$(sha TILT)" = SOURCE ]; then \
        [ -x /build/tilt-source/tilt ] || { echo "pyci image: TILT_SHA256_$SUFFIX=SOURCE but the tilt-source stage built nothing" >&2; exit 1; }; \
        install -m 0755 /build/tilt-source/tilt /out/usr/local/bin/tilt; \
      else \
        fetch tilt.tgz "https://github.com/tilt-dev/tilt/releases/download/$TILT_VERSION/tilt.${TILT_VERSION#v}.linux.$tilt_arch.tar.gz" "$(sha TILT)"; \
        tar -xzf /dl/tilt.tgz -C /out/usr/local/bin tilt; \
      fi; \
      install -m 0755 /dl/kind /dl/kubectl /out/usr/local/bin/; \
      if [ "$(sha HELM)" = UNKNOWN ]; then \
        echo "pyci image: helm $HELM_VERSION has no SHA256 pinned in versions.env: left out, never run unverified" >&2; \
      else \
        fetch helm.tgz "https://get.helm.sh/helm-$HELM_VERSION-linux-$arch.tar.gz" "$(sha HELM)"; \
        tar -xzf /dl/helm.tgz -C /out/usr/local/bin --strip-components=1 "linux-$arch/helm"; \
      fi; \
      # The docker CLI from Docker's apt repository: apt checks the .deb against the signed Release
      # file, and the key that signs it must have the fingerprint pinned in versions.env.
      apt-get update -q; \
      apt-get install -q -y --no-install-recommends gnupg >/dev/null; \
      python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
        https://download.docker.com/linux/debian/gpg /dl/docker.asc; \
      fpr=$(gpg --show-keys --with-colons /dl/docker.asc | awk -F: '$1 == "fpr" { print $10; exit }'); \
      if [ "$fpr" != "$DOCKER_APT_KEY_FINGERPRINT" ]; then \
        echo "pyci image: Docker's apt key has fingerprint '$fpr', not the pinned $DOCKER_APT_KEY_FINGERPRINT" >&2; \
        exit 1; \
      fi; \
      install -D -m 0644 /dl/docker.asc /etc/apt/keyrings/docker.asc; \
      . /etc/os-release; \
      echo "deb [arch=$arch signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $VERSION_CODENAME stable" \
        > /etc/apt/sources.list.d/docker.list; \
      apt-get update -q; \
      (cd /dl && apt-get download -q "docker-ce-cli=5:$DOCKER_CLI_VERSION-1~debian.$VERSION_ID~$VERSION_CODENAME" \
        socat libwrap0 busybox-static $(echo "$TOOLBOX_DEBS" | tr , ' ')); \
      # Only the client: pyci talks to the runner's (or a remote) daemon, it never runs one.
      dpkg-deb --fsys-tarfile /dl/docker-ce-cli_*.deb | tar -x -C /dl ./usr/bin/docker; \
      install -m 0755 /dl/usr/bin/docker /out/usr/local/bin/docker; \
      rm /dl/docker-ce-cli_*.deb; \
      rm -rf /var/lib/apt/lists/*; \
    elif [ "$TOOLS" = context ]; then \
      for tool in kind kubectl tilt docker helm; do \
        [ -x "/build/bin/$tool" ] || { echo "pyci image: TOOLS=context but .prebuilt/bin/$tool is missing" >&2; exit 1; }; \
        install -m 0755 "/build/bin/$tool" /out/usr/local/bin/; \
      done; \
      cp /build/debs/*.deb /dl/; \
    else \
      echo "pyci image: TOOLS must be download or context, not '$TOOLS'" >&2; exit 1; \
    fi; \
    # socat (remote-daemon forwarders), busybox (/bin/sh, tar, gzip) and the toolbox Tiltfiles call (git
    # for ext:// extensions, bash, curl, jq) from Debian: unpacked, not installed; the runtime has no
    # package manager. Of git's helper programs only the https transport and `git submodule` (tilt's
    # ext:// fetch runs `git submodule update` after its clone; a shell script and the two it sources)
    # are kept: the rest are hard links of git itself, which a layer would store once per name.
    for deb in /dl/*.deb; do dpkg-deb -x "$deb" /out; done; \
    find /out/usr/lib/git-core -mindepth 1 -maxdepth 1 ! -name git-remote-http ! -name git-remote-https \
      ! -name git-submodule ! -name git-sh-setup ! -name git-sh-i18n -exec rm -rf {} +; \
    ln -sf git-remote-http /out/usr/lib/git-core/git-remote-https; \
    rm -f /out/usr/bin/scalar /out/usr/bin/git-shell; \
    rm -rf /out/usr/share /out/etc; \
    ls -l /out/usr/local/bin /out/usr/bin/socat /out/bin/busybox

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
    # --no-compile: the rootfs stage byte-compiles everything once, without docstrings.
    # constraints.txt: the same dependency versions whatever day the image is built (and the lab tests).
    "$@" -c /src/entrypoint/image/constraints.txt --prefix /install --no-compile --no-warn-script-location --disable-pip-version-check --root-user-action=ignore; \
    # pip's --prefix layout (lib/pythonX.Y/site-packages) is not the base's own: Debian's python reads
    # /usr/local/lib/python3.11/dist-packages, python:slim /usr/local/lib/python3.11/site-packages.
    site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    mkdir -p "/out$site" /out/usr/local; \
    mv /install/lib/python3*/site-packages/* "/out$site/"; \
    mv /install/bin /out/usr/local/bin; \
    # kubernetes >= 37 ships a second, asyncio copy of every API model (kubernetes/aio, ~70 MB) and
    # requires aiohttp for it alone; pyci never imports either. Test suites in dependencies go too.
    rm -rf "/out$site/kubernetes/aio"; \
    for pkg in aiohttp aiohttp_retry aiohappyeyeballs aiosignal frozenlist multidict propcache yarl; do \
      rm -rf "/out$site/$pkg" "/out$site/$pkg"-*.dist-info; \
    done; \
    find "/out$site" -depth -type d -name tests -exec rm -rf {} +; \
    PYTHONPATH="/out$site" python3 -c 'import pyci.cli, kubernetes.client, docker, jsonschema, yaml'; \
    head -n 1 /out/usr/local/bin/pyci

# --- rootfs: the interpreter, the libraries everything links to, busybox, the stages above --------
FROM ${BASE_IMAGE} AS rootfs
COPY --from=tools /out/ /stage/
COPY --from=python /out/ /stage/
COPY entrypoint/image/rootfs.py /build/rootfs.py
RUN python3 /build/rootfs.py /stage /rootfs \
    && mkdir /check && cp -a /rootfs/. /rootfs-tools/. /rootfs-python/. /check/ \
    && chroot /check /usr/local/bin/pyci version >/dev/null \
    && chroot /check /bin/sh -c 'command -v tar gzip' >/dev/null \
    && rm -rf /check

# --- runtime: nothing but the rootfs (no package manager, no docs): the bundled tools plus ~80 MB -----
FROM scratch
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
# Three layers, the most stable first (see rootfs.py): the system, the tools, the Python packages.
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs /rootfs-tools/ /
COPY --from=rootfs /rootfs-python/ /
# Unbuffered: the log must stream into the CI console as tilt and the readiness watch progress.
# PYCI_IN_IMAGE: pyci runs inside its image, so a command the image lacks points to the host action.
ENV PATH=/usr/local/bin:/usr/bin \
    HOME=/root \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYCI_IN_IMAGE=1
# The runtime runs as root: it must use the Docker socket that GitHub and `docker run -v` mount, whose
# group differs on every host. docker run users mount their project here; GitHub sets its own workdir.
WORKDIR /workspace
# Arguments are run's flags (`docker run IMAGE --tiltfile x`); other subcommands need
# `--entrypoint pyci` (`docker run --entrypoint pyci IMAGE version`).
ENTRYPOINT ["pyci", "run"]
