#!/bin/sh
# The run-pyci command's script (tools/pack-orb inlines it into orb.yml). Every command parameter
# arrives as the PYCI_* variable pyci reads; empty ones count as unset, so pyci's defaults apply.
# POSIX sh: on the docker executor it runs in pyci's own image, whose shell is busybox's.
set -eu

# The password comes from a project variable the env_var_name parameter names (never a parameter
# value, which CircleCI would print in the config).
if [ "${PYCI_REGISTRY_PASSWORD_ENV:-PYCI_REGISTRY_PASSWORD}" != PYCI_REGISTRY_PASSWORD ]; then
  case $PYCI_REGISTRY_PASSWORD_ENV in  # checked before eval reads the variable it names
    *[!A-Za-z0-9_]* | [0-9]*)
      echo "pyci: error: registry-password-env: '$PYCI_REGISTRY_PASSWORD_ENV' is not a variable name" >&2
      exit 2 ;;
  esac
  eval "PYCI_REGISTRY_PASSWORD=\${$PYCI_REGISTRY_PASSWORD_ENV:-}"
  export PYCI_REGISTRY_PASSWORD
fi
unset PYCI_REGISTRY_PASSWORD_ENV
image=${PYCI_IMAGE:?}
unset PYCI_IMAGE
# pyci's CircleCI platform writes JUnit and the bundle here; the job stores both folders.
mkdir -p /tmp/pyci/test-results /tmp/pyci/artifacts

if command -v pyci >/dev/null 2>&1; then
  exec pyci run "$@"  # the docker executor: this job runs in pyci's image
fi

# A machine executor: run the image next to the VM's daemon with the project at the same path, so
# paths in pyci's outputs and reports mean the same inside and outside the container. Variable
# names are [A-Za-z0-9_] only, so the unquoted list splits into exactly the -e flags.
env_args=
for name in $(env | sed -n -E 's/^((PYCI_|CIRCLE)[A-Za-z0-9_]*)=.*/\1/p'); do
  env_args="$env_args -e $name"
done
# shellcheck disable=SC2086
exec docker run --rm -e CI $env_args \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$PWD:$PWD" -w "$PWD" -v /tmp/pyci:/tmp/pyci \
  "$image" "$@"
