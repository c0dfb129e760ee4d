#!/usr/bin/env bash
# Installs the programs the no-Docker local stack runs, from Debian's packages, but
# only the ones missing: `apt-get update` costs tens of seconds and needs network,
# so a machine that already has everything never touches apt.
#
#   redis-server          the cache
#   prometheus, promtool  metrics scraping and rule checks
#   java, mvn             the Kafka broker and the tool that fetches its jars
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } \
  || missing+=(prometheus)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

if ((${#missing[@]} == 0)); then
  echo "system packages: all present"
  exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "need root (or sudo) to apt-get install: ${missing[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
