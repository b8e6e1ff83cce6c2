#!/usr/bin/env bash
# Prints every imagestore event as "topic payload" lines until Ctrl-C
# (needs mosquitto-clients). QoS 1 matches what the service publishes with.
#   MQTT_HOST=127.0.0.1 MQTT_PORT=1883 bash extras/subscribe.sh
set -euo pipefail

host=${MQTT_HOST:-127.0.0.1}
port=${MQTT_PORT:-1883}

echo "\$ mosquitto_sub -h $host -p $port -t imagestore/notifier -q 1 -v"
exec mosquitto_sub -h "$host" -p "$port" -t imagestore/notifier -q 1 -v
