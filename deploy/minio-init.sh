#!/bin/sh
# Create Parley's archive bucket in MinIO (idempotent); used by the minio-init compose service.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing local/parley-archive
