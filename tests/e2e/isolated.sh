#!/bin/sh
# Runs the end-to-end tests in a private network namespace with only loopback up, where the machine
# allows it (root or user namespaces): mpirun and torch listen on every interface, and this keeps all
# the tests' traffic, Slurm's included, on this machine. Elsewhere it runs them as they are.
if unshare -n true 2> /dev/null && command -v ip > /dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "isolated.sh: no private network namespace here; running on the host's network" >&2
exec "$@"
