# mock-cpanel: the mock cPanel server for certqd's tests, and the unit
# tests of its form decoder. It builds without daemon/ and common/.

MOCK_SRC = $(wildcard tests/mock/*.c)
MOCK_OBJ = $(MOCK_SRC:%.c=$(BUILD)/%.o)
MOCK_CPANEL = $(BUILD)/mock-cpanel
TEST_MOCK_FORM = $(BUILD)/test-mock-form

PROGRAMS += $(MOCK_CPANEL)
TEST_PROGRAMS += $(TEST_MOCK_FORM)

$(MOCK_CPANEL): $(MOCK_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) \
	    $(shell pkg-config --libs libevent_pthreads 2>/dev/null) -lpthread

$(TEST_MOCK_FORM): $(BUILD)/tests/mock/unit/test-form.o $(BUILD)/tests/mock/form.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcmocka

.PHONY: mock-check
mock-check: $(MOCK_CPANEL) $(TEST_MOCK_FORM)
	$(TEST_MOCK_FORM)
	tests/mock/test-mock.sh $(BUILD)
