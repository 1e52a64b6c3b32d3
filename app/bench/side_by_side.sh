#!/usr/bin/env bash
# The app's `make bench` figures for two checkouts, interleaved in one run on this machine:
#   app/bench/side_by_side.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]
# Each round runs both checkouts' scripts/bench.sh (each with its own app/ and the shared venv),
# OLD first in odd rounds and NEW first in even ones, so a busy spell on the machine or one
# run's aftermath hits both alike. Prints every run's rows (production =
# no store, redis = with the Redis store, baseline) and each checkout's median per row.
# Knobs as scripts/bench.sh (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_PATH).
set -euo pipefail
old="${1:?usage: side_by_side.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]}"
new="${2:?usage: side_by_side.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]}"
rounds="${3:-3}"
[ "$rounds" -ge 1 ] && [ "$rounds" -le 10 ] || { echo "side_by_side: ROUNDS must be 1..10" >&2; exit 1; }
for tree in "$old" "$new"; do
  [ -x "$tree/scripts/bench.sh" ] || { echo "side_by_side: no scripts/bench.sh in $tree" >&2; exit 1; }
done
rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
for round in $(seq 1 "$rounds"); do
  order="old new"; [ $((round % 2)) -eq 0 ] && order="new old"
  for side in $order; do
    tree="$old"; [ "$side" = new ] && tree="$new"
    echo "== round $round/$rounds: $side ($tree), load average $(cut -d' ' -f1 /proc/loadavg)"
    out="$(cd "$tree" && PY="${PY:-venv/bin/python}" ./scripts/bench.sh 2>&1)" || {
      echo "$out" | tail -5; echo "side_by_side: bench failed in $tree" >&2; exit 1; }
    echo "$out" | grep -E '^(production|redis|baseline) +[0-9]|^bench: redis holds'
    echo "$out" | awk -v s="$side" -v r="$round" \
      '/^(production|redis|baseline) +[0-9]/ {print s, r, $1, $2, $3, $4, $5}' >>"$rows"
  done
done
echo
echo "median of $rounds rounds (requests/s, p50 ms, p99 ms), and new/old requests/s:"
for name in production redis baseline; do
  line=""
  for side in old new; do
    med() { awk -v s="$side" -v n="$name" -v c="$1" '$1 == s && $3 == n {print $c}' "$rows" \
      | sort -g | awk '{v[NR] = $1} END { if (NR) print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }
    line="$line $(med 4) $(med 5) $(med 6)"
  done
  # shellcheck disable=SC2086
  set -- $line
  [ $# -eq 6 ] || continue
  awk -v n="$name" -v a="$1" -v b="$2" -v c="$3" -v d="$4" -v e="$5" -v f="$6" 'BEGIN {
    printf "%-11s old %9.0f  %5.2f  %6.2f | new %9.0f  %5.2f  %6.2f | new/old %.2f\n",
      n, a, b, c, d, e, f, (a > 0 ? d / a : 0) }'
done
