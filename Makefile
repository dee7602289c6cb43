# Thin wrapper over Meson: 'make' builds build/veneer, 'make demo' runs the
# demo, 'make check' runs every test suite (plain, ASan+UBSan, TSan),
# 'make deb' builds the Debian packages into $(DEBDIR).
BUILD ?= build
DEBDIR ?= build-deb

.PHONY: all demo check deps deb clean

all: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	ninja -C $(BUILD)

deps:
	@scripts/install-deps.sh

demo: all
	@scripts/demo.sh $(BUILD)/veneer

deb:
	@scripts/install-deps.sh --deb
	@scripts/make-deb.sh $(DEBDIR)

check:
	@scripts/install-deps.sh --test
	@scripts/check.sh

clean:
	rm -rf build build-asan build-tsan $(DEBDIR)
