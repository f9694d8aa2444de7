#!/usr/bin/env bash
# Runs the benchmark suite (package bench) COUNT times, shows it through
# benchstat, and prints the target table of the read path with the measured
# ratios (medians) and the fallback share of each steady-state benchmark.
#
#   scripts/bench.sh                 # COUNT=6, BENCHTIME=500ms
#   COUNT=10 BENCHTIME=1s scripts/bench.sh
#   OUT=/tmp/bench.txt scripts/bench.sh
#   IN=/tmp/bench.txt scripts/bench.sh   # tables only, from an earlier run's output
#   BENCH='(CryptoRand|ReadSecret)$/^32B$' scripts/bench.sh   # a subset, with its peers
#     (go test splits -bench at each slash outside brackets: one group per level)
#   TIMEOUT=30m scripts/bench.sh     # go test's -timeout (default 0: none; the
#     whole suite runs longer than go test's own default of 10 minutes)
#
# Network: loopback only (the simulator). The whole suite takes well over
# 10 minutes on 2 cores (the steady-state benchmarks wait for the refill with
# the timer stopped, and the ReadFor benchmarks draw their events first); the
# read-path subset of docs/benchmarks.md takes about 12 minutes at
# BENCHTIME=300ms.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-6}
BENCH=${BENCH:-.}   # a -bench pattern: a subset of the suite (its peers must be in it for the ratios)
BENCHTIME=${BENCHTIME:-500ms}
TIMEOUT=${TIMEOUT:-0}
OUT=${OUT:-$(mktemp -t entropy-bench.XXXXXX)}
N=$(nproc)

export PATH="$PATH:$(go env GOPATH)/bin"
if ! command -v benchstat >/dev/null 2>&1; then
	go install golang.org/x/perf/cmd/benchstat@latest
fi

if [ -n "${IN:-}" ]; then
	# Only the tables, from the raw output of an earlier run.
	OUT=$IN
else
	echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version)"
	echo "# raw output: $OUT"
	go test -run XXX -bench "$BENCH" -benchmem -count "$COUNT" -benchtime "$BENCHTIME" -timeout "$TIMEOUT" -cpu "$N" ./bench | tee "$OUT"
	if [ "$N" -gt 1 ] && { [ "$BENCH" = . ] || [[ "$BENCH" == *ParallelFullPool* ]]; }; then
		# -cpu 1 for the parallel scaling rows (skipped by a subset without them).
		go test -run XXX -bench 'ReadParallelFullPool|ReadLabelledParallelFullPool' -benchmem -count "$COUNT" -benchtime "$BENCHTIME" -timeout "$TIMEOUT" -cpu 1 ./bench | tee -a "$OUT"
	fi
	# The replay guard's memory per job (a root-package benchmark: the guard is internal).
	go test -run XXX -bench 'ReplayGuardMemory' -count 1 -benchtime 1x -cpu "$N" . | tee -a "$OUT"
fi
export COUNT

echo
benchstat "$OUT"

# Medians per benchmark (name with its -cpu suffix) of ns/op and fallback/op.
medians() {
	awk '/^Benchmark/ {
		for (i = 3; i < NF; i++) {
			if ($(i+1) == "ns/op") print $1, "ns", $i
			if ($(i+1) == "fallback/op") print $1, "fb", $i
			if ($(i+1) == "bytes/job") print $1, "bpj", $i
			if ($(i+1) == "allocs/read") print $1, "apr", $i
			if ($(i+1) == "refill/health") print $1, "rh", $i
		}
	}' "$OUT" | sort -k1,1 -k2,2 -k3,3g | awk '
	function flush() { if (n > 0) { m = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2; print key, m } }
	{ k = $1 " " $2; if (k != key) { flush(); key = k; n = 0 } v[++n] = $3 }
	END { flush() }'
}

medians | awk -v N="$N" '
function name(b) { return (N > 1) ? b "-" N : b }
function get(b, what) { k = b " " what; return (k in m) ? m[k] : "" }
function ratio(a, b,   x, y) { x = get(a, "ns"); y = get(b, "ns"); if (x == "" || y == "" || y == 0) return "n/a"; return sprintf("%.3f", x / y) }
function tput(a, b,   x, y) { x = get(a, "ns"); y = get(b, "ns"); if (x == "" || y == "" || x == 0) return "n/a"; return sprintf("%.3f", y / x) }
function perbyte(a, an, b, bn,   x, y) { x = get(a, "ns"); y = get(b, "ns"); if (x == "" || y == "" || x == 0) return "n/a"; return sprintf("%.3f", (y / bn) / (x / an)) }
function ns(b) { x = get(b, "ns"); if (x == "") return "n/a"; if (x >= 1e6) return sprintf("%.2f ms", x / 1e6); if (x >= 1e4) return sprintf("%.1f µs", x / 1e3); return sprintf("%.1f", x) }
function row(fig, target, val, detail) { printf "| %s | %s | %s | %s |\n", fig, target, val, detail }
{ m[$1 " " $2] = $3 }
END {
	print ""
	print "## Targets (medians of " ENVIRON["COUNT"] " runs; time per op: ns unless marked)"
	print ""
	print "| figure | target | measured | ns/op |"
	print "|---|---|---|---|"
	row("Read 32 B, full pool / crypto/rand.Read 32 B", "<= 0.15", ratio(name("BenchmarkReadFullPool/32B"), name("BenchmarkCryptoRand/32B")), ns(name("BenchmarkReadFullPool/32B")) " / " ns(name("BenchmarkCryptoRand/32B")))
	row("ReadLabelled 32 B, full pool / crypto/rand.Read 32 B", "<= 0.25", ratio(name("BenchmarkReadLabelledFullPool/32B"), name("BenchmarkCryptoRand/32B")), ns(name("BenchmarkReadLabelledFullPool/32B")) " / " ns(name("BenchmarkCryptoRand/32B")))
	row("ReadLabelledInto 32 B, full pool (reused Label, 0 allocs) / crypto/rand.Read 32 B", "<= 0.25", ratio(name("BenchmarkReadLabelledIntoFullPool/32B"), name("BenchmarkCryptoRand/32B")), ns(name("BenchmarkReadLabelledIntoFullPool/32B")) " / " ns(name("BenchmarkCryptoRand/32B")))
	row("Read 4 KiB, full pool / crypto/rand.Read 4 KiB", "<= 0.05", ratio(name("BenchmarkReadFullPool/4KiB"), name("BenchmarkCryptoRand/4KiB")), ns(name("BenchmarkReadFullPool/4KiB")) " / " ns(name("BenchmarkCryptoRand/4KiB")))
	row("Degrade fallback Read 32 B / crypto/rand.Read 32 B", "<= 1.0", ratio(name("BenchmarkFallbackRead/32B"), name("BenchmarkCryptoRand/32B")), ns(name("BenchmarkFallbackRead/32B")) " / " ns(name("BenchmarkCryptoRand/32B")))
	if (N > 1) {
		row("ReadParallel 32 B, full pool, throughput -cpu " N " / -cpu 1", ">= 1.6", tput(name("BenchmarkReadParallelFullPool/32B"), "BenchmarkReadParallelFullPool/32B"), ns(name("BenchmarkReadParallelFullPool/32B")) " / " ns("BenchmarkReadParallelFullPool/32B"))
		row("ReadLabelledParallel 32 B, full pool, throughput -cpu " N " / -cpu 1", ">= 1.6", tput(name("BenchmarkReadLabelledParallelFullPool/32B"), "BenchmarkReadLabelledParallelFullPool/32B"), ns(name("BenchmarkReadLabelledParallelFullPool/32B")) " / " ns("BenchmarkReadLabelledParallelFullPool/32B"))
	}
	split("64KiB 4KiB 32B", hs, " ")
	for (i = 1; i <= 3; i++) {
		v = "BenchmarkHTTP/verifiable/" hs[i]; r = "BenchmarkHTTP/raw/" hs[i]
		row("httpsource verifiable MB/s / simulator raw MB/s, " hs[i] ", binary", ">= 0.9", tput(name(v), name(r)), ns(name(v)) " / " ns(name(r)))
	}
	for (i = 1; i <= 3; i++) {
		v = "BenchmarkHTTP/verifiable-json/" hs[i]; r = "BenchmarkHTTP/raw-json/" hs[i]
		row("httpsource verifiable MB/s / simulator raw MB/s, " hs[i] ", JSON", ">= 0.9", tput(name(v), name(r)), ns(name(v)) " / " ns(name(r)))
	}
	row("ReadSecret 32 B / crypto/rand.Read 32 B (0 allocs)", "<= 0.30", ratio(name("BenchmarkReadSecret/32B"), name("BenchmarkCryptoRand/32B")), ns(name("BenchmarkReadSecret/32B")) " / " ns(name("BenchmarkCryptoRand/32B")))
	row("SecretReader io.ReadFull 32 B, parallel / crypto/rand parallel", "<= 0.30", ratio(name("BenchmarkSecretReaderParallel/32B"), name("BenchmarkCryptoRandParallel/32B")), ns(name("BenchmarkSecretReaderParallel/32B")) " / " ns(name("BenchmarkCryptoRandParallel/32B")))
	row("sustained Read 4 KiB under Defer (refill in the timer) / crypto/rand.Read 4 KiB", "<= 0.35", ratio(name("BenchmarkSustainedDefer/4KiB"), name("BenchmarkCryptoRand/4KiB")), ns(name("BenchmarkSustainedDefer/4KiB")) " / " ns(name("BenchmarkCryptoRand/4KiB")))
	row("sustained Read 4 KiB under Defer: allocations per read, the refill included", "0", (get(name("BenchmarkSustainedDefer/4KiB"), "apr") == "" ? "n/a" : get(name("BenchmarkSustainedDefer/4KiB"), "apr")), "")
	row("sustained Read 32 B under Degrade (refill in the timer): fallback share", "<= 0.05", (get(name("BenchmarkSustainedDegrade/32B"), "fb") == "" ? "n/a" : get(name("BenchmarkSustainedDegrade/32B"), "fb")), ns(name("BenchmarkSustainedDegrade/32B")))
	row("refill throughput / health-test throughput alone (per byte)", ">= 0.75", perbyte(name("BenchmarkRefill"), 8388608, name("BenchmarkHealthCheck"), 65536), ns(name("BenchmarkRefill")) " per 8 MiB / " ns(name("BenchmarkHealthCheck")) " per 64 KiB")
	row("same, interleaved in one loop (RefillAgainstHealth)", ">= 0.75", (get(name("BenchmarkRefillAgainstHealth"), "rh") == "" ? "n/a" : get(name("BenchmarkRefillAgainstHealth"), "rh")), "")
	row("replay guard bytes per job at 10^6 jobs", "<= 16", (get(name("BenchmarkReplayGuardMemory"), "bpj") == "" ? "n/a" : get(name("BenchmarkReplayGuardMemory"), "bpj")), "")
	print ""
	print "## Fallback share (target 0 for the ...FullPool benchmarks)"
	print ""
	print "| benchmark | fallback/op (median) |"
	print "|---|---|"
	n = 0
	for (k in m) { split(k, a, " "); if (a[2] == "fb") keys[++n] = a[1] }
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	for (i = 1; i <= n; i++) printf "| %s | %s |\n", keys[i], m[keys[i] " fb"]
}'
