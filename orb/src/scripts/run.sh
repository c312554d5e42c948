#!/usr/bin/env bash
# The run-pyci command's script (tools/pack-orb inlines it into orb.yml). Every command parameter
# arrives as the PYCI_* variable pyci reads; empty ones count as unset, so pyci's defaults apply.
set -euo pipefail

# The password comes from a project variable the env_var_name parameter names (never a parameter
# value, which CircleCI would print in the config).
if [ "${PYCI_REGISTRY_PASSWORD_ENV:-PYCI_REGISTRY_PASSWORD}" != PYCI_REGISTRY_PASSWORD ]; then
  export PYCI_REGISTRY_PASSWORD="${!PYCI_REGISTRY_PASSWORD_ENV:-}"
fi
unset PYCI_REGISTRY_PASSWORD_ENV
image=${PYCI_IMAGE:?}
unset PYCI_IMAGE
# pyci's CircleCI platform writes JUnit and the bundle here; the job stores both folders.
mkdir -p /tmp/pyci/test-results /tmp/pyci/artifacts

if command -v pyci >/dev/null 2>&1; then
  exec pyci run  # the docker executor: this job runs in pyci's image
fi

# A machine executor: run the image next to the VM's daemon with the project at the same path, so
# paths in pyci's outputs and reports mean the same inside and outside the container.
env_args=()
for name in $(compgen -e | grep -E '^(PYCI_|CIRCLE)'); do env_args+=(-e "$name"); done
exec docker run --rm -e CI "${env_args[@]}" \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$PWD:$PWD" -w "$PWD" -v /tmp/pyci:/tmp/pyci \
  "$image" run
