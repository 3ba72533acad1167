# certqd: build, test and demo.  `make demo` and `make check` install what
# they need on Debian 12 (through `make deps`), so they work on a fresh machine.

SANITIZE ?= 0
OPT ?= -O2 -g
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1 -g
else
BUILD ?= build
SAN_FLAGS =
endif

CC ?= cc
WERROR ?=
PKGS = libevent libevent_openssl libcurl yajl hiredis inih openssl
WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
       -Wpointer-arith -Wcast-align -Wwrite-strings -Wvla -Wno-unused-parameter $(WERROR)
HARDEN = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) $(SAN_FLAGS) -MMD -MP \
             -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDFLAGS_ALL = -pie -Wl,-z,relro,-z,now $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

COMMON_SRC = $(wildcard common/*.c)
COMMON_OBJ = $(COMMON_SRC:%.c=$(BUILD)/%.o)
DAEMON_SRC = $(wildcard daemon/*.c)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(BUILD)/%.o)

CERTQD = $(BUILD)/certqd
PROGRAMS = $(CERTQD)

.PHONY: all deps demo check clean valgrind soak lint

all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	ar rcs $@ $^

$(CERTQD): $(DAEMON_OBJ) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# Each extra program or test suite adds itself through a fragment.
include $(wildcard */module.mk tests/*/module.mk)

all: $(PROGRAMS)

deps:
	@./tests/install-deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@./tests/demo.sh $(BUILD)

check: deps
	@$(MAKE) --no-print-directory all $(TEST_PROGRAMS)
	@BUILD=$(BUILD) ./tests/run.sh

valgrind: deps
	@$(MAKE) --no-print-directory all
	@./tests/valgrind.sh $(BUILD)

# A few minutes of jobs with crashes, Redis outages and cPanel faults injected; SOAK_JOBS, SOAK_SECONDS.
soak: deps
	@$(MAKE) --no-print-directory all
	@./tests/soak.sh $(BUILD)

lint: deps
	@./tests/lint.sh

clean:
	rm -rf build build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
