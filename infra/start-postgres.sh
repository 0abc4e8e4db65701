#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster if it is not answering (the tests use 127.0.0.1:5432, db `test`).
set -euo pipefail
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL is not installed; install it (apt-get install postgresql) or set TEST_POSTGRES_URL" >&2
    exit 1
fi
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
    sleep 1
done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
