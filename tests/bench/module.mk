# make bench: certqd's benchmark suite.  It builds optimised binaries into
# build-bench/ and runs tests/bench/run.sh, which rewrites BENCHMARKS.md.
# BENCH_PROFILE=1 adds a perf profile (tests/bench/profile.sh).

BENCH_LOAD = $(BUILD)/bench-load

$(BENCH_LOAD): $(BUILD)/tests/bench/load.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

.PHONY: bench
bench: deps
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@$(MAKE) --no-print-directory BUILD=build-bench OPT=-O2 SANITIZE=0 \
	    build-bench/certqd build-bench/mock-cpanel build-bench/bench-load
	@BENCH_COMMAND="make bench" tests/bench/run.sh build-bench
