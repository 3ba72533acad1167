# libFuzzer targets for common/ and the mock's form decoder, built with clang
# and sanitizers into build-fuzz/, and the replay program that runs their
# stored inputs as part of `make check`.
#
#   make fuzz                    build every target and run each for FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=300   longer runs; the corpus in build-fuzz/corpus/ grows across runs

FUZZ_BUILD = build-fuzz
FUZZ_CC = clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = job uapi form config
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -MMD -MP $(shell pkg-config --cflags yajl inih 2>/dev/null)
FUZZ_LIBS = $(shell pkg-config --libs yajl inih 2>/dev/null) -lm
FUZZ_LIB_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard common/*.c) tests/mock/form.c tests/fuzz/fuzz_abort.c)
FUZZ_BINS = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# Keep the objects that pattern rules build, so a second `make fuzz` relinks nothing.
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.o)

FUZZ_REGRESSIONS = $(BUILD)/test-fuzz-regressions
FUZZ_REGRESSION_OBJ = $(patsubst %.c,$(BUILD)/tests/fuzz/%-replay.o,$(notdir $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%.c))) \
                      $(BUILD)/tests/fuzz/regressions.o
TEST_PROGRAMS += $(FUZZ_REGRESSIONS)

.PHONY: fuzz fuzz-build fuzz-runtime

# libFuzzer's runtime ships in libclang-rt-14-dev on Debian 12; install it only when a test link fails.
fuzz-runtime:
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null || \
	    { echo "libFuzzer runtime missing: installing libclang-rt-14-dev"; \
	      apt-get install -y libclang-rt-14-dev >/dev/null || \
	      { apt-get update >/dev/null && apt-get install -y libclang-rt-14-dev >/dev/null; }; }

fuzz-build: fuzz-runtime
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

# Each run starts from the seeds plus what earlier runs found, and fails on the first crash,
# leaving the input in build-fuzz/crash-TARGET-*.  stdin is /dev/null because a config may
# name /dev/stdin as its token_file.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    cp tests/fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s, log in $(FUZZ_BUILD)/fuzz_$$t.log"; \
	    if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	            -dict=tests/fuzz/$$t.dict -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	            $(FUZZ_BUILD)/corpus/$$t </dev/null >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	        tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; \
	        echo "fuzz_$$t failed; copy the crash input into tests/fuzz/regressions/$$t/"; \
	        exit 1; \
	    fi; \
	    grep -E '^(#[0-9]+[[:space:]]+DONE|Done )' $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

# The replay program: the same target bodies, without libFuzzer, over every stored input.
$(BUILD)/tests/fuzz/%-replay.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DFUZZ_NO_MAIN -c $< -o $@

$(FUZZ_REGRESSIONS): $(FUZZ_REGRESSION_OBJ) $(BUILD)/tests/mock/form.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
