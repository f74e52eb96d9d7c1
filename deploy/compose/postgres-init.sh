#!/bin/bash
# First start of the PostgreSQL container only: the points service's narrow role with its
# password from the environment (its migrations create the role only where it is missing, and
# grant it SELECT and INSERT on the ledger, never UPDATE or DELETE).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v pw="$JIFEN_POINTS_APP_PASSWORD" <<'SQL'
CREATE ROLE jifen_points_app LOGIN PASSWORD :'pw';
SQL
