# make install / make uninstall: the programs, the systemd unit, the sysusers.d
# file, the example config and the man pages.  PREFIX (default /usr/local)
# sets where they go, DESTDIR prepends a staging directory.  Also builds the
# unit file's test into $(BUILD)/test-systemd-unit for `make check`.

PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
SYSUSERSDIR = $(PREFIX)/lib/sysusers.d
# Debian's systemd looks for packaged units in /lib/systemd/system, and for
# local ones in /usr/local/lib/systemd/system.
ifeq ($(PREFIX),/usr)
UNITDIR = /lib/systemd/system
else
UNITDIR = $(PREFIX)/lib/systemd/system
endif
CONFDIR = /etc/certqd

INSTALL ?= install
CERTQ_MAN = $(wildcard cli/certq.1)

TEST_PROGRAMS += $(BUILD)/test-systemd-unit

# tests/run.sh runs every $(BUILD)/test-* program.  The test follows the link
# to find the repository.
$(BUILD)/test-systemd-unit: systemd/test-unit.sh
	@mkdir -p $(dir $@)
	ln -sf $(CURDIR)/systemd/test-unit.sh $@

.PHONY: install uninstall

# The unit is rewritten at every install, because PREFIX may have changed.
install: all
	@mkdir -p $(BUILD)/systemd
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/certqd.service >$(BUILD)/systemd/certqd.service
	$(INSTALL) -D -m 0755 $(BUILD)/certqd $(DESTDIR)$(BINDIR)/certqd
	$(if $(filter %/certq,$(PROGRAMS)),$(INSTALL) -D -m 0755 $(BUILD)/certq $(DESTDIR)$(BINDIR)/certq)
	$(INSTALL) -D -m 0644 $(BUILD)/systemd/certqd.service $(DESTDIR)$(UNITDIR)/certqd.service
	$(INSTALL) -D -m 0644 systemd/certqd.sysusers $(DESTDIR)$(SYSUSERSDIR)/certqd.conf
	$(INSTALL) -D -m 0644 config/certqd.conf $(DESTDIR)$(CONFDIR)/certqd.conf.example
	$(INSTALL) -D -m 0644 daemon/certqd.8 $(DESTDIR)$(MANDIR)/man8/certqd.8
	$(INSTALL) -D -m 0644 config/certqd.conf.5 $(DESTDIR)$(MANDIR)/man5/certqd.conf.5
	$(if $(CERTQ_MAN),$(INSTALL) -D -m 0644 $(CERTQ_MAN) $(DESTDIR)$(MANDIR)/man1/certq.1)
	@echo "Next, as root: systemd-sysusers certqd.conf; systemctl daemon-reload;"
	@echo "write $(CONFDIR)/certqd.conf from certqd.conf.example; systemctl enable --now certqd"

# Leaves $(CONFDIR) alone: it holds the administrator's config and tokens.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/certqd $(DESTDIR)$(BINDIR)/certq
	rm -f $(DESTDIR)$(UNITDIR)/certqd.service $(DESTDIR)$(SYSUSERSDIR)/certqd.conf
	rm -f $(DESTDIR)$(CONFDIR)/certqd.conf.example
	rm -f $(DESTDIR)$(MANDIR)/man8/certqd.8 $(DESTDIR)$(MANDIR)/man5/certqd.conf.5 \
	      $(DESTDIR)$(MANDIR)/man1/certq.1
