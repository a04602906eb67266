# cglow build. `make` builds build/cglow and build/libcglow.a; `make test` builds the sanitized
# test binaries (float32 and a float64 engine for gradient checks) and runs the whole suite.
CC      ?= gcc
ARCH    ?= -march=native
OPT     ?= -O3
WARN    := -Wall -Wextra -Wno-unused-parameter
CSTD    := -std=c11 -D_GNU_SOURCE
INC     := -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu
CFLAGS  += $(CSTD) $(OPT) $(ARCH) -ffp-contract=fast -g $(WARN) -fopenmp $(INC)
LDLIBS  := -lopenblas -lfftw3f -lfftw3 -lpng -lcjson -lm -fopenmp
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC := $(shell find src -name '*.c' -not -path 'src/cli/*' -not -path 'src/kernels/cuda/*' | sort)
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))

B := build
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(B)/obj/%.o)
# Sanitized float32 and float64 builds of the library, for the tests.
ASAN_OBJ  := $(LIB_SRC:%.c=$(B)/asan/%.o)
ASAN64_OBJ := $(LIB_SRC:%.c=$(B)/asan64/%.o)
ASANCLI_OBJ := $(CLI_SRC:%.c=$(B)/asan/%.o)

.PHONY: all test demo deps clean bench
all: $(B)/cglow $(B)/libcglow.a

$(B)/libcglow.a: $(LIB_OBJ)
	@mkdir -p $(@D); rm -f $@; ar rcs $@ $^
$(B)/cglow: $(CLI_OBJ) $(B)/libcglow.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(B)/libcglow.a $(LDLIBS)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D); $(CC) $(CFLAGS) -MMD -MP -c $< -o $@
$(B)/asan/%.o: %.c
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -MMD -MP -c $< -o $@
$(B)/asan64/%.o: %.c
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -DCGLOW_DOUBLE=1 -MMD -MP -c $< -o $@

$(B)/libcglow_asan.a: $(ASAN_OBJ)
	@mkdir -p $(@D); rm -f $@; ar rcs $@ $^
$(B)/libcglow_asan64.a: $(ASAN64_OBJ)
	@mkdir -p $(@D); rm -f $@; ar rcs $@ $^
# The sanitized CLI, so that the command-line tests (bad input, round trips) run under ASan too.
$(B)/cglow_asan: $(ASANCLI_OBJ) $(B)/libcglow_asan.a
	$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $(ASANCLI_OBJ) $(B)/libcglow_asan.a $(LDLIBS)

# tests/test_*.c link the float32 library; tests/test_*64.c link the float64 one.
TEST_BIN := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
$(B)/tests/%64: tests/%64.c tests/test.h $(B)/libcglow_asan64.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -DCGLOW_DOUBLE=1 -o $@ $< $(B)/libcglow_asan64.a $(LDLIBS)
$(B)/tests/%: tests/%.c tests/test.h $(B)/libcglow_asan.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -o $@ $< $(B)/libcglow_asan.a $(LDLIBS)

BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
$(B)/bench/%: bench/%.c $(B)/libcglow.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(B)/libcglow.a $(LDLIBS)
bench: $(BENCH_BIN) $(B)/cglow

deps:
	@bash scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all $(B)/cglow_asan $(TEST_BIN)
	@bash tests/run_tests.sh

demo: deps
	@$(MAKE) --no-print-directory all
	$(B)/cglow demo --out demo

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
