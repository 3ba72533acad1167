# certq: the operator's command-line tool, built from cli/*.c against libcommon.a.

CERTQ_SRC = $(wildcard cli/*.c)
CERTQ_OBJ = $(CERTQ_SRC:%.c=$(BUILD)/%.o)
CERTQ = $(BUILD)/certq

PROGRAMS += $(CERTQ)

$(CERTQ): $(CERTQ_OBJ) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)
