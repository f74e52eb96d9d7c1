#!/bin/bash
# Creates Jifen's topics on Apache Kafka with their partitions, replication and retention.
# Names: jifen.kernel.topics (a test holds this list equal to the code's). Replication, min ISR,
# cleanup policy and the dead letters' retention are deploy/kafka/topics.json's (held equal by
# tests/kafka/test_topic_settings.py). Ledger-bearing topics keep their records for RETENTION_MS
# (topics.json's retention.ms is its default); dead-letter topics keep theirs for a year.
set -euo pipefail
KT=/opt/kafka/bin/kafka-topics.sh
: "${BOOTSTRAP:?}" "${PARTITIONS:?}" "${RETENTION_MS:?}"
TOPICS="tasks.jobs tasks.completions redeem.redemptions points.ledger points.adjustments"
for t in $TOPICS; do
    "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$t" \
        --partitions "$PARTITIONS" --replication-factor 3 \
        --config min.insync.replicas=2 --config retention.ms="$RETENTION_MS" \
        --config cleanup.policy=delete
    "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$t.dlq" \
        --partitions "$PARTITIONS" --replication-factor 3 \
        --config min.insync.replicas=2 --config retention.ms=31536000000 \
        --config cleanup.policy=delete
done
"$KT" --bootstrap-server "$BOOTSTRAP" --describe | grep -c PartitionCount
