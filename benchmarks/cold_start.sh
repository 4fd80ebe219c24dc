#!/usr/bin/env bash
# Time a cold `make run` (fresh clone, empty data folder) to the first 200 OK.
# The virtualenv cache is warm when requirements.txt is unchanged — the usual
# case; the first install on a new machine additionally downloads torch (GBs).
# Usage: benchmarks/cold_start.sh [runs]   (prints one line per run + the median)
set -euo pipefail
RUNS="${1:-3}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PORT=8765
times=()
for i in $(seq 1 "$RUNS"); do
    work="$(mktemp -d)"
    git clone -q "$REPO" "$work/apex"
    start=$(date +%s.%N)
    (cd "$work/apex" && APEX_DATA_DIR="$work/data" make run PORT=$PORT >"$work/run.log" 2>&1) &
    runner=$!
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)" = 200 ]; do
        if ! kill -0 "$runner" 2>/dev/null; then
            echo "make run exited early:"; tail -20 "$work/run.log"; exit 1
        fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    elapsed=$(echo "$end - $start" | bc)
    times+=("$elapsed")
    echo "run $i: first 200 OK after ${elapsed}s"
    pkill -f "uvicorn apex_site.asgi:application --host 127.0.0.1 --port $PORT" || true
    wait "$runner" 2>/dev/null || true
    rm -rf "$work"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median: " a[int((NR+1)/2)] "s over " NR " runs"}'
