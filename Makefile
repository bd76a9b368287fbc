# Builds and installs libbatv, the C library: the shared library (soname libbatv.so.0), the
# static library, include/batv.h and batv.pc for pkg-config.
#
#   make                       cargo build --release -p batv-ffi
#   make install PREFIX=/usr/local [DESTDIR=...] [LIBDIR=...]
#   make uninstall PREFIX=/usr/local
#   make deb                   the Debian packages, into $(TARGET_DIR)/debian/ (packaging/debian/build)
#
# Afterwards `pkg-config --cflags --libs batv` finds it (set PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
# for a prefix pkg-config does not search by default).

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
CARGO      ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE    := $(TARGET_DIR)/release
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
SONAME     := libbatv.so.0

.PHONY: all build install uninstall deb

all: build

build:
	$(CARGO) build --release -p batv-ffi

install: build
	@test -n "$(VERSION)" || { echo "cannot read the version from Cargo.toml" >&2; exit 1; }
	install -d "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(PCDIR)"
	install -m 0755 "$(RELEASE)/libbatv.so" "$(DESTDIR)$(LIBDIR)/libbatv.so.$(VERSION)"
	ln -sfn "libbatv.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/$(SONAME)"
	ln -sfn "$(SONAME)" "$(DESTDIR)$(LIBDIR)/libbatv.so"
	install -m 0644 "$(RELEASE)/libbatv.a" "$(DESTDIR)$(LIBDIR)/libbatv.a"
	install -m 0644 include/batv.h "$(DESTDIR)$(INCLUDEDIR)/batv.h"
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    batv.pc.in > "$(DESTDIR)$(PCDIR)/batv.pc"
	chmod 0644 "$(DESTDIR)$(PCDIR)/batv.pc"

uninstall:
	rm -f "$(DESTDIR)$(LIBDIR)/libbatv.so" "$(DESTDIR)$(LIBDIR)/$(SONAME)" \
	      "$(DESTDIR)$(LIBDIR)/libbatv.so.$(VERSION)" "$(DESTDIR)$(LIBDIR)/libbatv.a" \
	      "$(DESTDIR)$(INCLUDEDIR)/batv.h" "$(DESTDIR)$(PCDIR)/batv.pc"

# libbatv0, libbatv-dev, batv (and batv-milter when its crate is in the tree), with cargo-deb.
deb:
	CARGO="$(CARGO)" packaging/debian/build
