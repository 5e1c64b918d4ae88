#!/usr/bin/env bash
# What `make bench` needs besides the virtualenv: wrk, and PostgreSQL/Redis running on loopback.
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
# weasyprint renders 3.5x slower without HarfBuzz subsetting.
if ! dpkg -s libharfbuzz-subset0 >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libharfbuzz-subset0
fi
