#!/usr/bin/env bash
# Makes docs/report-example.png: the README's Locust replay through a consumer, then `perfwatch report`.
# Needs a running broker (PERFWATCH_BOOTSTRAP_SERVERS) and a bundle (BUNDLE, default artifacts/bundle).
set -euo pipefail
BUNDLE=${BUNDLE:-artifacts/bundle}
RUN=${RUN:-bitcoin-api-replay}
PY=${PY:-.venv/bin/python}
sfx=$(date +%s)
topics=(--samples-topic "ex.samples.$sfx" --predictions-topic "ex.pred.$sfx" --alerts-topic "ex.alerts.$sfx"
        --dlq-topic "ex.dlq.$sfx")
$PY -m perfwatch.app.cli consume --bundle "$BUNDLE" --hysteresis 3/5 --group-id "ex-$sfx" "${topics[@]}" &
consumer=$!
trap 'kill "$consumer" 2>/dev/null || true' EXIT
sleep 15  # the consumer creates the topics and joins its group
$PY -m perfwatch.app.cli replay examples/locust-bitcoin-api/results_stats_history.csv \
  --host-metrics examples/bitcoin-api-host-metrics.jsonl --speed max --run-id "$RUN" --no-progress \
  "${topics[0]}" "${topics[1]}"
sleep 15  # let the consumer classify the 112 samples
kill "$consumer"; wait "$consumer" || true
$PY -m perfwatch.app.cli report "$RUN" --group-id "ex-$sfx" --out docs/report-example.png "${topics[@]:0:6}"
