#!/usr/bin/env bash
# The local cluster's system services, from Debian's packages: PostgreSQL (Dagster storage, MLflow's backend store,
# the router label cache) and RabbitMQ (the Celery broker). Installs only what is missing, never starts the system
# services (`llmoe-cluster up` runs its own instances on 127.0.0.1 under $LLMOE_HOME/cluster). The Python side is
# the `cluster` extra of setup.py, which `make install` installs.
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v epmd >/dev/null || need+=(erlang-base)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: missing ${need[*]}: run as root, or: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} (Debian packages; their system services are not started)"
# policy-rc.d keeps apt from starting the packaged services (which would listen on every interface).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
fi
trap 'if [ $created_policy -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
