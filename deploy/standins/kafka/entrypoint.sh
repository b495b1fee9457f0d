#!/bin/bash
# Tansu on :9092 advertised as KAFKA_ADVERTISED_HOST (kafka), then KAFKA_TOPIC with KAFKA_NUM_PARTITIONS.
set -euo pipefail
host=${KAFKA_ADVERTISED_HOST:-kafka}
tansu broker --listener-url tcp://0.0.0.0:9092 --advertised-listener-url "tcp://$host:9092" \
  --storage-engine memory://tansu/ &
broker=$!
trap 'kill -TERM $broker; wait $broker' TERM INT
until (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; do sleep 0.2; done
tansu topic create "${KAFKA_TOPIC:-movielog}" --partitions "${KAFKA_NUM_PARTITIONS:-3}" \
  --broker tcp://127.0.0.1:9092 || echo "topic ${KAFKA_TOPIC:-movielog} not created (exists?)"
wait $broker
