# Unit tests of common/: each tests/unit/test_NAME.c becomes the cmocka program
# $(BUILD)/test-unit-NAME, linked against libcommon.a.

UNIT_TEST_SRC = $(wildcard tests/unit/test_*.c)
UNIT_TEST_OBJ = $(UNIT_TEST_SRC:%.c=$(BUILD)/%.o)
UNIT_TESTS = $(patsubst tests/unit/test_%.c,$(BUILD)/test-unit-%,$(UNIT_TEST_SRC))

TEST_PROGRAMS += $(UNIT_TESTS)

$(UNIT_TESTS): $(BUILD)/test-unit-%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lcmocka
