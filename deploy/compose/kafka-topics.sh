#!/bin/bash
# Creates Jifen's topics on Apache Kafka with their partitions, replication and retention.
# Names: jifen.kernel.topics (a test holds this list equal to the code's). Ledger-bearing
# topics keep their records for RETENTION_MS; dead-letter topics keep theirs for a year.
set -euo pipefail
KT=/opt/kafka/bin/kafka-topics.sh
: "${BOOTSTRAP:?}" "${PARTITIONS:?}" "${RETENTION_MS:?}"
TOPICS="tasks.jobs tasks.completions redeem.redemptions points.ledger points.adjustments"
for t in $TOPICS; do
    "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$t" \
        --partitions "$PARTITIONS" --replication-factor 3 \
        --config min.insync.replicas=2 --config retention.ms="$RETENTION_MS"
    "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$t.dlq" \
        --partitions "$PARTITIONS" --replication-factor 3 \
        --config min.insync.replicas=2 --config retention.ms=31536000000
done
"$KT" --bootstrap-server "$BOOTSTRAP" --describe | grep -c PartitionCount
