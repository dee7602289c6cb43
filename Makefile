# Thin wrapper over Meson: 'make' builds build/veneer, 'make demo' runs the
# demo, 'make check' runs every test suite (plain, ASan+UBSan, TSan).
BUILD ?= build

.PHONY: all demo check deps clean

all: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	ninja -C $(BUILD)

deps:
	@scripts/install-deps.sh

demo: all
	@scripts/demo.sh $(BUILD)/veneer

check:
	@scripts/install-deps.sh --test
	@scripts/check.sh

clean:
	rm -rf build build-asan build-tsan
