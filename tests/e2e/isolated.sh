#!/bin/sh
# Runs the end-to-end tests in a private network namespace, where the machine allows it (root or user
# namespaces): mpirun and torch listen on every interface, and this keeps all the tests' traffic,
# Slurm's included, on this machine. Besides loopback the namespace has one bridge with no ports and a
# private address: resolvers that ask for a configured non-loopback address (getaddrinfo with
# AI_ADDRCONFIG, as slurmd does) find one, and nothing is reachable through it. Elsewhere the tests
# run on the host's network.
setup='ip link set lo up && ip link add cairn0 type bridge && ip addr add 10.254.254.1/32 dev cairn0 && ip link set cairn0 up'
if command -v ip > /dev/null && unshare -n sh -c "$setup" 2> /dev/null; then
  exec unshare -n sh -c "$setup"' && exec "$@"' sh "$@"
fi
echo "isolated.sh: no private network namespace here; running on the host's network" >&2
exec "$@"
