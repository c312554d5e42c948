#!/bin/sh
# Build tilt from its pinned tag's source, for a platform whose release binary has no published digest
# (versions.env: TILT_SHA256_<ARCH>=SOURCE). Everything comes through the Go module proxy and is
# verified before it is built:
#   - tilt's module at TILT_VERSION: its h1 hash must be TILT_SOURCE_H1 (the checksum database's);
#   - the Go toolchain TILT_SOURCE_GO: the `go` on PATH when it is exactly that version, else the
#     golang.org/toolchain module zip for this machine, whose h1 must be TILT_SOURCE_GO_H1_<HOSTARCH>;
#   - every dependency against the tag's own go.sum (-mod=readonly: a module go.sum lacks is an error),
#     with one line replaced: TILT_SOURCE_GOSUM_FIX (module@version=h1:...), where the tag's go.sum
#     disagrees with the checksum database (the database's hash is the one kept);
#   - the result, when TILT_SOURCE_SHA256_<ARCH> is pinned, must hash as pinned (-trimpath, fixed
#     ldflags, the pinned Go; the C compiler is Debian bookworm's, so pin only what that reproduces).
# The web UI's compiled assets are not in the module (tilt's release builds them with yarn): a one-line
# pkg/assets/build/index.html stands in, enough for `tilt ci`; `tilt up`'s browser UI shows that page.
#
# Usage: build-tilt.sh --arch amd64|arm64 --out FILE [--versions FILE] [--work DIR]
#   --versions  default: versions.env beside this script
#   --work      scratch folder (default: a new one under TMPDIR, removed at the end); the toolchain
#               zip is kept in $PYCI_BUILD_TILT_CACHE (default ~/.cache/pyci-build-tilt) for next time
# Environment: GOPROXY, GOMODCACHE, GOCACHE as usual (GOSUMDB=off, GONOSUMDB/GONOSUMCHECK/GOINSECURE
# and GOFLAGS=-insecure are refused: every module is checked).
set -eu

die() { echo "build-tilt.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
arch='' out='' versions=$here/versions.env work=''
while [ $# -gt 0 ]; do
  case $1 in
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; arch=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --versions) [ $# -ge 2 ] || die "--versions needs a value"; versions=$2; shift 2 ;;
    --work) [ $# -ge 2 ] || die "--work needs a value"; work=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--arch amd64|arm64 --out FILE [--versions FILE] [--work DIR])" ;;
  esac
done
case $arch in
  amd64|arm64) ;;
  '') die "--arch is required (amd64 or arm64)" ;;
  *) die "--arch $arch: amd64 or arm64" ;;
esac
[ -n "$out" ] || die "--out is required"
[ -r "$versions" ] || die "versions file $versions not readable"
case "${GOSUMDB:-}:${GONOSUMDB:-}${GONOSUMCHECK:-}${GOINSECURE:-}:${GOFLAGS:-}" in
  off:*|*:?*:*|*-insecure*) die "refused: GOSUMDB=off, GONOSUMDB, GONOSUMCHECK, GOINSECURE or GOFLAGS=-insecure would skip a check" ;;
esac

# versions.env is plain KEY=value lines (sh-sourceable as it is).
# shellcheck disable=SC1090
. "$versions"
upper=$(echo "$arch" | tr '[:lower:]' '[:upper:]')
need() { eval "v=\${$1:-}"; [ -n "$v" ] || die "$versions has no $1"; echo "$v"; }
version=$(need TILT_VERSION)
source_h1=$(need TILT_SOURCE_H1)
go_version=$(need TILT_SOURCE_GO)
gosum_fix=${TILT_SOURCE_GOSUM_FIX:-}
eval "want_sha=\${TILT_SOURCE_SHA256_$upper:-}"

started=$(date +%s)
made_work=false
if [ -z "$work" ]; then work=$(mktemp -d "${TMPDIR:-/tmp}/build-tilt.XXXXXX"); made_work=true; fi
mkdir -p "$work"
cleanup() { if $made_work; then chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the pinned Go ------------------------------------------------------------------------------------
go=$(command -v go 2>/dev/null || true)
if [ -n "$go" ] && [ "$(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null)" = "$go_version" ]; then
  echo "build-tilt.sh: Go $go_version: $go"
else
  case $(uname -m) in x86_64|amd64) host=amd64 ;; aarch64|arm64) host=arm64 ;; *) die "no Go toolchain pinned for $(uname -m)" ;; esac
  host_upper=$(echo "$host" | tr '[:lower:]' '[:upper:]')
  go_h1=$(need "TILT_SOURCE_GO_H1_$host_upper")
  mod="golang.org/toolchain@v0.0.1-$go_version.linux-$host"
  tc_cache=${PYCI_BUILD_TILT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyci-build-tilt}
  proxy=$(echo "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1 | cut -d'|' -f1)
  case $proxy in direct|off|'') proxy=https://proxy.golang.org ;; esac
  mkdir -p "$tc_cache"
  zip=$tc_cache/toolchain-$go_version.linux-$host.zip
  echo "build-tilt.sh: Go $go_version from $proxy ($mod)"
  # Fetched (when not kept from before), its h1 checked, unpacked: python, which pyci and the image's
  # build stage both have (no unzip, no curl needed).
  python3 - "$proxy/golang.org/toolchain/@v/v0.0.1-$go_version.linux-$host.zip" "$zip" "$go_h1" "$work/go" <<'EOF' || exit 3
import base64, hashlib, os, stat, sys, urllib.request, zipfile
url, zpath, want, dest = sys.argv[1:]
if not os.path.exists(zpath):
    tmp = zpath + ".part"
    urllib.request.urlretrieve(url, tmp)
    os.replace(tmp, zpath)
with zipfile.ZipFile(zpath) as z:
    names = sorted(n for n in z.namelist() if not n.endswith("/"))
    lines = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names)
    got = "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()
    if got != want:
        os.unlink(zpath)
        sys.exit(f"build-tilt.sh: {url}: h1 {got}, not the pinned {want}; deleted, nothing built")
    first = names[0]  # golang.org/toolchain@v0.0.1-goX.Y.Z.linux-ARCH/...: the module's root
    prefix = first[: first.index("/", first.index("@")) + 1]
    for n in names:
        target = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(z.read(n))
        rel = n[len(prefix):]
        if rel.startswith("bin/") or rel.startswith("pkg/tool/"):
            os.chmod(target, os.stat(target).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
EOF
  go=$work/go/bin/go
  [ "$(GOTOOLCHAIN=local "$go" env GOVERSION)" = "$go_version" ] || die "$go is not $go_version"
fi
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

# --- tilt's source at the tag, checked against the pin ------------------------------------------------
mkdir -p "$work/empty"
info=$(cd "$work/empty" && "$go" mod download -json "github.com/tilt-dev/tilt@$version") \
  || { echo "$info" >&2; exit 3; }
field() { echo "$info" | sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\{0,1\}$/\\1/p" | head -n 1; }
sum=$(field Sum) dir=$(field Dir) commit=$(field Hash)
built=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(field Info)")
[ "$sum" = "$source_h1" ] || { echo "build-tilt.sh: github.com/tilt-dev/tilt@$version has h1 $sum, not the pinned $source_h1" >&2; exit 3; }
echo "build-tilt.sh: tilt $version source ($sum, commit ${commit:-unknown})"
rm -rf "$work/src"
cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"

if [ -n "$gosum_fix" ]; then
  fix_mod=${gosum_fix%%=*}
  fix_hash=${gosum_fix#*=}
  fix_path=${fix_mod%@*} fix_ver=${fix_mod#*@}
  if [ "$fix_path" = "$fix_mod" ] || [ -z "$fix_ver" ] || [ "$fix_hash" = "$gosum_fix" ]; then
    die "TILT_SOURCE_GOSUM_FIX=$gosum_fix: expected module@version=h1:hash"
  fi
  n=$(awk -v p="$fix_path" -v v="$fix_ver" '$1 == p && $2 == v { c++ } END { print c + 0 }' "$work/src/go.sum")
  [ "$n" = 1 ] || die "TILT_SOURCE_GOSUM_FIX: tilt's go.sum has $n lines for $fix_path $fix_ver, not 1: check the pin"
  old=$(awk -v p="$fix_path" -v v="$fix_ver" '$1 == p && $2 == v { print $3 }' "$work/src/go.sum")
  awk -v p="$fix_path" -v v="$fix_ver" -v h="$fix_hash" '$1 == p && $2 == v { $3 = h } { print }' \
    "$work/src/go.sum" >"$work/go.sum.fixed"
  mv "$work/go.sum.fixed" "$work/src/go.sum"
  echo "build-tilt.sh: go.sum: $fix_path $fix_ver $old -> $fix_hash (the checksum database's; the only line changed)"
fi

echo '<!doctype html><title>tilt (built from source by pyci: no web UI)</title>' \
  >"$work/src/pkg/assets/build/index.html"

# --- the build ------------------------------------------------------------------------------------------
# cgo: the Tiltfile language server (starlark-lsp) parses with tree-sitter, C and C++. Linked statically
# as tilt's releases are (netgo, osusergo: no glibc resolver or NSS at run time), so the binary needs no
# library. Building for another architecture takes Debian's cross compilers (CC/CXX to override).
case $(uname -m) in x86_64|amd64) build_host=amd64 ;; aarch64|arm64) build_host=arm64 ;; *) build_host=other ;; esac
if [ "$arch" != "$build_host" ]; then
  case $arch in amd64) triplet=x86_64-linux-gnu ;; arm64) triplet=aarch64-linux-gnu ;; esac
  CC=${CC:-$triplet-gcc} CXX=${CXX:-$triplet-g++}
else
  CC=${CC:-gcc} CXX=${CXX:-g++}
fi
for c in "$CC" "$CXX"; do
  command -v "$c" >/dev/null 2>&1 || die "no C/C++ compiler $c for linux/$arch (Debian: apt-get install gcc g++, or gcc-$triplet g++-$triplet libc6-dev-$arch-cross to build for $arch elsewhere)"
done
ldflags="-s -w -X main.version=${version#v} -X main.commit=${commit:-unknown} -X main.date=${built:-unknown} -X main.builtBy=pyci-build-tilt -linkmode external -extldflags -static"
echo "build-tilt.sh: go build -trimpath -tags netgo,osusergo (GOOS=linux GOARCH=$arch CGO_ENABLED=1 CC=$CC, static, -mod=readonly)"
mkdir -p "$(dirname "$out")"
(cd "$work/src" && CGO_ENABLED=1 CC=$CC CXX=$CXX GOOS=linux GOARCH=$arch "$go" build -mod=readonly -trimpath \
  -tags netgo,osusergo -ldflags "$ldflags" -o "$out.tmp" ./cmd/tilt) || { rm -f "$out.tmp"; exit 3; }
(cd "$work/src" && "$go" mod verify >/dev/null) || { rm -f "$out.tmp"; echo "build-tilt.sh: go mod verify failed" >&2; exit 3; }
got=$(sha256sum "$out.tmp" | cut -d' ' -f1)
if [ -n "$want_sha" ] && [ "$got" != "$want_sha" ]; then
  rm -f "$out.tmp"
  echo "build-tilt.sh: the build hashes $got, not the pinned TILT_SOURCE_SHA256_$upper=$want_sha" >&2
  exit 3
fi
chmod 0755 "$out.tmp"
mv "$out.tmp" "$out"
echo "build-tilt.sh: $out: tilt $version linux/$arch, sha256 $got${want_sha:+ (as pinned)}, in $(( $(date +%s) - started ))s"
