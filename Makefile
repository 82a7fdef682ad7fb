# Petrel build. GNU make, no generator: see docs/DEVELOPING.md for why.
#
# Layout rule: every .c under a part's folder belongs to that part's library; every .c under
# tests/PART/ belongs to the test binary build/tests/test-PART; every .sh under tests/PART/ is a
# script case run by tests/run-all.sh. Adding a file never needs an edit here.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CSTD    ?= -std=c11

# Libraries the host programs use, by pkg-config name. mk/deps.sh installs what is missing.
PKGS    := libuv raft lmdb fuse3 libisal libxxhash libsodium libmicrohttpd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
CFLAGS  += $(CSTD) $(OPT) -g $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -Itests/runner -Itests $(SAN) -MMD -MP
LDFLAGS += $(SAN)
LDLIBS  += -lpthread -lm

# Parts: name -> source folders.
COMMON_SRCS  := $(sort $(wildcard src/common/*.c))
FS_SRCS      := $(sort $(wildcard src/bd/*.c src/fs/*.c))
CLUSTER_SRCS := $(sort $(wildcard src/cluster/*.c src/cluster/*/*.c))
VFS_SRCS     := $(sort $(wildcard src/vfs/*.c src/fuse/*.c))
CLI_SRCS     := $(sort $(wildcard src/cli/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON  := $(BUILD)/libpetrel_common.a
LIB_FS      := $(BUILD)/libpetrel_fs.a
LIB_CLUSTER := $(BUILD)/libpetrel_cluster.a
LIB_VFS     := $(BUILD)/libpetrel_vfs.a
# Link order: users before what they use.
LIBS        := $(LIB_VFS) $(LIB_CLUSTER) $(LIB_FS) $(LIB_COMMON)

TEST_PARTS  := $(filter-out runner,$(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tests/*/*))))))
TEST_C_PARTS:= $(filter-out runner,$(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tests/*/*.c))))))
TEST_BINS   := $(patsubst %,$(BUILD)/tests/test-%,$(TEST_C_PARTS))
RUNNER_SRCS := $(wildcard tests/runner/*.c)

BENCH_SRCS  := $(sort $(wildcard bench/*.c))
BENCH_BIN   := $(BUILD)/bench/petrel-bench

.PHONY: all build deps test check bench run conformance \
        format lint c99 clean help soak fuzz mutants layout crc-variants \
        size switch-matrix install example bench-cluster test-multihost bench-shard-rss
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory build

build: $(BUILD)/petrel $(TEST_BINS) $(BENCH_BIN) $(BUILD)/fuzz-seeds/make-seeds

deps:
	@sh mk/deps.sh $(PKGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRCS))
$(LIB_FS): $(call obj,$(FS_SRCS))
$(LIB_CLUSTER): $(call obj,$(CLUSTER_SRCS))
$(LIB_VFS): $(call obj,$(VFS_SRCS))
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	@echo "  AR      $@"
	@$(AR) rcs $@ $^

$(BUILD)/petrel: $(call obj,$(CLI_SRCS)) $(LIBS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $(call obj,$(CLI_SRCS)) $(LIBS) $(PKG_LIBS) $(LDLIBS)

# Objects built through the pattern rules below are kept (not deleted as intermediates).
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/test-%: $$(call obj,$$(sort $$(wildcard tests/%/*.c)) $(RUNNER_SRCS)) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $(call obj,$(sort $(wildcard tests/$*/*.c)) $(RUNNER_SRCS)) \
		$(LIBS) $(PKG_LIBS) $(LDLIBS)

$(BENCH_BIN): $(call obj,$(BENCH_SRCS)) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $(call obj,$(BENCH_SRCS)) $(LIBS) $(PKG_LIBS) $(LDLIBS)

# The fuzz seed writer (fuzz/make_seeds.c) is built with every build so it keeps compiling
# against the encoders it calls; run it by hand to rewrite fuzz/corpus (fuzz/README.md).
$(BUILD)/fuzz-seeds/make-seeds: fuzz/make_seeds.c $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(PKG_CFLAGS) -Ifuzz $(LDFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS) $(LDLIBS)

# --- running -------------------------------------------------------------------------------

test: all layout crc-variants switch-matrix example
	@bash tests/run-all.sh $(BUILD) $(TEST_PARTS)

# The CRC-32C build switches (include/petrel/crc32c.h): the CRC tests and the flash engine's
# quick cases built and run with each table size, with and without hardware paths.
crc-variants: all
	@bash mk/crc-variants.sh $(BUILD) "$(CC)" "$(CFLAGS)" "$(LDFLAGS)" "$(PKG_LIBS) $(LDLIBS)"

# The flash engine's build switches (include/petrel/fs.h: no log, no assert, no fsck, and all
# firmware switches together): the engine built with each, its quick test cases run against it.
switch-matrix: all
	@bash mk/switch-matrix.sh $(BUILD) "$(CC)" "$(CFLAGS)" "$(LDFLAGS)" "$(PKG_LIBS) $(LDLIBS)"

# The flash engine measured as firmware (docs/FIRMWARE.md): text, worst stack path, largest
# frames and struct sizes for Cortex-M0 and -M4, each against its limit; exits non-zero when
# one is over. Skipped (said so, exit 0) without gcc-arm-none-eabi. Not part of `make test`
# while the figures are over; tests/firmware checks the measuring script itself.
size:
	@bash mk/size.sh $(BUILD)

# The porting example (examples/spi_nor) built for the host with the firmware switches (no
# malloc, no log, no assert, no fsck, 64-byte CRC table) and run: format, write, power cut,
# mount, read back.
EXAMPLE_SWITCHES := -DPETREL_FS_NO_MALLOC -DPETREL_NO_LOG -DPETREL_NO_ASSERT \
                    -DPETREL_FS_NO_CHECK -DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=64
EXAMPLE_SRCS := $(sort $(wildcard src/fs/*.c)) src/common/crc32c.c src/common/crc32c_hw.c src/common/crc32c_x86.c \
                src/common/crc32c_arm.c src/common/hash.c src/common/log.c src/common/assert.c \
                src/common/error.c examples/spi_nor/spi_nor.c
example: $(BUILD)/examples/spi_nor
	@$(BUILD)/examples/spi_nor

$(BUILD)/examples/spi_nor: $(EXAMPLE_SRCS) $(wildcard include/petrel/*.h src/fs/*.h src/common/*.h)
	@mkdir -p $(BUILD)/examples
	@echo "  LD      $@"
	@$(CC) -std=c99 -pedantic $(OPT) -Wall -Wextra -Werror -Iinclude -Isrc $(SAN) \
		$(EXAMPLE_SWITCHES) -DEXAMPLE_REPORT -o $@ $(EXAMPLE_SRCS)

# The flash engine alone for firmware and host projects: libpetrel-fs.a (src/fs, src/bd and the
# src/common pieces they use), its headers and petrel-fs.pc, under PREFIX (DESTDIR honoured).
# Needs none of the cluster's dependencies.
PREFIX ?= /usr/local
FS_LIB_SRCS := $(FS_SRCS) $(sort $(wildcard src/common/crc32c*.c)) src/common/hash.c \
               src/common/log.c src/common/assert.c src/common/error.c src/common/prng.c
FS_HEADERS  := include/petrel/fs.h include/petrel/bd.h include/petrel/common.h \
               include/petrel/crc32c.h include/petrel/hash.h include/petrel/prng.h
$(BUILD)/libpetrel-fs.a: $(call obj,$(FS_LIB_SRCS))
install: $(BUILD)/libpetrel-fs.a
	@sh mk/install.sh "$(DESTDIR)" "$(PREFIX)" $(BUILD)/libpetrel-fs.a $(FS_HEADERS)

# The cluster's dependency rule: includes point one way (docs/DESIGN.md, "Cluster layout").
layout:
	@sh scripts/layout.sh

# test-common, test-fs, test-cluster, test-cli, ...: one part (explicit rules: a pattern
# rule test-% would also match build/tests/test-PART).
TEST_PART_TARGETS := $(addprefix test-,$(sort $(TEST_PARTS) common fs cluster cli))
.PHONY: $(TEST_PART_TARGETS)
$(TEST_PART_TARGETS): all
	@bash tests/run-all.sh $(BUILD) $(patsubst test-%,%,$@)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build tree.
check: deps
	@$(MAKE) --no-print-directory build BUILD=build/san OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		PETREL_SANITIZED=1 bash tests/run-all.sh build/san $(TEST_PARTS)

# Long randomized runs: fresh seeds, more iterations. Not part of `make test`. SEEDS=N sets how
# many fresh seeds the cluster and block-service simulations run (default 2000); a failure prints its replay command.
SEEDS ?= 2000
soak: all
	@PETREL_SOAK=1 PETREL_TEST_SEED=random PETREL_SIM_SEEDS=$(SEEDS) PETREL_SIM_BLOCKS_SEEDS=$(SEEDS) \
		bash tests/run-all.sh $(BUILD) $(TEST_PARTS)

# Mutation check: deliberate bugs, one at a time, in a copy of the committed tree; prints which
# test caught each (scripts/mutants.sh). MUTANT_SEEDS: simulation seeds per mutant.
MUTANT_SEEDS ?= 200
mutants: all
	@bash scripts/mutants.sh $(MUTANT_SEEDS)

# Public POSIX suites (pjdfstest, fsx, fsstress from ../shared/suites, built under
# build/suites/) against the image and cluster mounts: passed/total per suite and tier. Needs
# root; `make test` runs a quick subset (tests/cli/conformance_quick.sh). See docs/CLI.md.
conformance: all
	@bash mk/conformance.sh $(BUILD) full

# Five hosts as network namespaces on this machine (mk/multihost.sh): a registry group, shards
# and CDC of three replicas, block services spread; one host cut off, then the registry
# leader's host; latency and loss with tc netem when the kernel has it. Needs root; about 75 s.
# Not part of make test.
test-multihost: all
	@bash mk/multihost.sh $(BUILD)

bench: all
	@$(BENCH_BIN)

# A local cluster's streaming throughput against the raw disk in one run (mk/bench-cluster.sh;
# BENCH_SIZE_MB, default 1024; BENCH_DIR, default build/bench-cluster). Not part of make test.
bench-cluster: all
	@bash mk/bench-cluster.sh $(BUILD)

# A shard replica's memory as its store grows (mk/bench-shard-rss.sh; BENCH_FILES, default
# 100000; BENCH_THREADS, default 8). Not part of make test.
bench-shard-rss: all
	@bash mk/bench-shard-rss.sh $(BUILD)

# Only the binary: a user's first command should not wait for the test and bench builds.
run: deps
	@$(MAKE) --no-print-directory $(BUILD)/petrel
	@sh mk/run.sh $(BUILD)

# libFuzzer targets (fuzz/fuzz_TARGET.c), built with clang under ASan+UBSan in build/fuzz and
# run one at a time for FUZZ_TIME seconds each (FUZZ_TARGETS picks some). Not part of `make
# test`: tests/fuzz_regress replays the saved corpora there. See fuzz/README.md.
FUZZ_TARGETS ?= $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_TIME    ?= 120
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 \
		SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		$(patsubst %,build/fuzz/fuzz-%,$(FUZZ_TARGETS))
	@bash fuzz/run.sh build/fuzz $(FUZZ_TIME) $(FUZZ_TARGETS)

$(BUILD)/fuzz-%: fuzz/fuzz_%.c fuzz/fuzz.h $(LIBS)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(PKG_CFLAGS) -DPT_LIBFUZZER -fsanitize=fuzzer $< -o $@ $(LIBS) \
		$(PKG_LIBS) $(LDLIBS)

# The flash engine and the CRC must build as plain C99 with no dependency but libc headers.
c99:
	@mkdir -p $(BUILD)/c99
	@for f in $(FS_SRCS) src/common/crc32c.c src/common/hash.c src/common/prng.c; do \
		$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -Iinclude -Isrc -Os -c $$f \
			-o $(BUILD)/c99/$$(basename $$f .c).o || exit 1; \
	done; echo "c99: flash engine builds as C99"

format:
	clang-format -i $$(find include src tests bench -name '*.[ch]')

lint:
	clang-tidy --quiet $$(find src -name '*.c') -- $(CSTD) -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr -Iinclude -Isrc src

clean:
	rm -rf build

help:
	@echo "make | make test | make test-PART | make check | make layout | make bench | make bench-cluster | make run | make soak [SEEDS=N]"
	@echo "make crc-variants | make switch-matrix | make example | make size"
	@echo "make install [PREFIX=/usr/local DESTDIR=]: the flash engine library alone (petrel-fs.pc)"
	@echo "make mutants [MUTANT_SEEDS=N] | make test-multihost (root: five hosts as network namespaces)"
	@echo "make format | make lint | make c99 | make clean | make fuzz [FUZZ_TIME=S FUZZ_TARGETS=..]"

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
