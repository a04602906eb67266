# cglow build. `make` builds build/cglow and build/libcglow.a; `make test` builds the sanitized
# test binaries (float32 and a float64 engine for gradient checks) and runs the whole suite.
CC      ?= gcc
ARCH    ?= -march=native
OPT     ?= -O3
WARN    := -Wall -Wextra -Wno-unused-parameter
CSTD    := -std=c11 -D_GNU_SOURCE
INC     := -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu
CFLAGS  += $(CSTD) $(OPT) $(ARCH) -ffp-contract=fast -fno-math-errno -g $(WARN) -fopenmp $(INC)
LDLIBS  := -lopenblas -lfftw3f -lfftw3 -lpng -lcjson -lm -fopenmp
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# src/model/flow_cuda.c (the flow on a CUDA device) goes into libcglow_cuda.a, not libcglow.a.
LIB_SRC := $(shell find src -name '*.c' -not -path 'src/cli/*' -not -path 'src/kernels/cuda/*' -not -name flow_cuda.c | sort)
CLI_SRC := $(sort $(wildcard src/cli/*.c))
CUDA_TEST_SRC := tests/test_cuda.c tests/test_flow_cuda.c
TEST_SRC := $(filter-out $(CUDA_TEST_SRC),$(sort $(wildcard tests/test_*.c)))
BENCH_SRC := $(filter-out bench/bench_cuda.c bench/bench_flow_cuda.c,$(sort $(wildcard bench/*.c)))

# CUDA backend (src/kernels/cuda): built only when nvcc exists (CUDA=0 turns it off). `make cuda`
# builds build/libcglow_cuda.a, build/tests/test_cuda and build/bench/bench_cuda; `make test` then
# also builds and runs test_cuda, which prints SKIP lines on a machine without a GPU.
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA ?= $(if $(NVCC),1,0)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(NVCC)))
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64
NVCCFLAGS ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
             -lineinfo -Xcompiler -Wall,-Wextra,-Wno-unused-parameter
CUDA_SRC := $(sort $(wildcard src/kernels/cuda/*.cu))
CUDA_HDR := $(wildcard src/kernels/cuda/*.h src/kernels/cuda/*.cuh)
CUDA_LDLIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart -lstdc++
# A program with the CUDA backend: -u pulls flow_cuda.o (backend.c refers to it weakly).
CUDA_LINK = -Wl,-u,flow_backend_cuda -Wl,--start-group $(B)/libcglow.a $(B)/libcglow_cuda.a -Wl,--end-group \
            $(LDLIBS) $(CUDA_LDLIBS)

B := build
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(B)/obj/%.o)
# Sanitized float32 and float64 builds of the library, for the tests.
ASAN_OBJ  := $(LIB_SRC:%.c=$(B)/asan/%.o)
ASAN64_OBJ := $(LIB_SRC:%.c=$(B)/asan64/%.o)
ASANCLI_OBJ := $(CLI_SRC:%.c=$(B)/asan/%.o)

.PHONY: all test demo deps clean bench cuda cuda-model gpu-bundle FORCE
all: $(B)/cglow $(B)/libcglow.a

$(B)/libcglow.a: $(LIB_OBJ)
	@mkdir -p $(@D); rm -f $@; ar rcs $@ $^
# With nvcc (CUDA=1) the tool carries the CUDA backend (--device cuda); without, it says so.
# $(B)/cuda.flag changes with CUDA, so that switching it relinks the tool.
$(B)/cuda.flag: FORCE
	@mkdir -p $(@D); echo $(CUDA) | cmp -s - $@ || echo $(CUDA) > $@
FORCE:
ifeq ($(CUDA),1)
$(B)/cglow: $(CLI_OBJ) $(B)/libcglow.a $(B)/libcglow_cuda.a $(B)/cuda.flag
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(CUDA_LINK)
else
$(B)/cglow: $(CLI_OBJ) $(B)/libcglow.a $(B)/cuda.flag
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(B)/libcglow.a $(LDLIBS)
endif

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
$(B)/tests/%64: tests/%64.c $(wildcard tests/*.h) $(B)/libcglow_asan64.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -DCGLOW_DOUBLE=1 -o $@ $< $(B)/libcglow_asan64.a $(LDLIBS)
$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/libcglow_asan.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -o $@ $< $(B)/libcglow_asan.a $(LDLIBS)

BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
$(B)/bench/%: bench/%.c $(B)/libcglow.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(B)/libcglow.a $(LDLIBS)
bench: $(BENCH_BIN) $(B)/cglow

# ---- CUDA (not part of `all`). The test and bench link the float32 CPU kernels and the error
# functions only (objects of libcglow.a, without ASan: the sanitizer's shadow memory and the CUDA
# driver do not mix), so that they build on a GPU machine without OpenBLAS, FFTW, libpng, cJSON.
# NVCC_EXTRA adds nvcc flags (e.g. NVCC_EXTRA='-Xptxas -v' for registers and spills).
CUDA_OBJ := $(CUDA_SRC:%.cu=$(B)/cuda/%.o)
CUDA_CPU_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(sort $(wildcard src/kernels/cpu/*.c)) src/util/error.c)
$(B)/cuda/%.o: %.cu $(CUDA_HDR) include/cglow.h
	@mkdir -p $(@D); $(NVCC) $(NVCCFLAGS) $(NVCC_EXTRA) -Iinclude -Isrc -c $< -o $@
$(B)/libcglow_cuda.a: $(CUDA_OBJ) $(B)/obj/src/model/flow_cuda.o
	@mkdir -p $(@D); rm -f $@; ar rcs $@ $^
$(B)/tests/test_cuda: tests/test_cuda.c tests/test.h src/kernels/cuda/kernels_cuda.h $(B)/libcglow_cuda.a $(CUDA_CPU_OBJ)
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(CUDA_CPU_OBJ) $(B)/libcglow_cuda.a $(CUDA_LDLIBS) -lopenblas -lm -fopenmp
$(B)/bench/bench_cuda: bench/bench_cuda.c src/kernels/cuda/kernels_cuda.h $(B)/libcglow_cuda.a $(CUDA_CPU_OBJ)
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(CUDA_CPU_OBJ) $(B)/libcglow_cuda.a $(CUDA_LDLIBS) -lopenblas -lm -fopenmp
# The whole model on the device against the CPU backend, and its speed (the full library: these
# need OpenBLAS & co. where they run; bench/gpu_check.sh carries them as `make gpu-bundle`).
$(B)/tests/test_flow_cuda: tests/test_flow_cuda.c tests/test.h tests/model_util.h $(B)/libcglow.a $(B)/libcglow_cuda.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(CUDA_LINK)
$(B)/bench/bench_flow_cuda: bench/bench_flow_cuda.c $(B)/libcglow.a $(B)/libcglow_cuda.a
	@mkdir -p $(@D); $(CC) $(CFLAGS) -o $@ $< $(CUDA_LINK)
# The same kernels compiled as C++20 against src/kernels/cuda/emul.h (a CPU emulation of the
# CUDA runtime and cuBLAS: threads per block, barriers, naive GEMMs), under ASan/UBSan: test_cuda's
# comparisons run on every machine (build/tests/test_cuda_emul, part of `make test`, no nvcc).
EMUL_OBJ := $(CUDA_SRC:%.cu=$(B)/emul/%.o)
EMUL_CPU_OBJ := $(CUDA_CPU_OBJ:$(B)/obj/%=$(B)/asan/%)
$(B)/emul/%.o: %.cu $(CUDA_HDR) include/cglow.h
	@mkdir -p $(@D); $(CXX) -x c++ -std=c++20 -DKCU_EMULATE -O1 -g $(WARN) -Wno-unknown-pragmas $(SAN) -pthread \
		-Iinclude -Isrc -c $< -o $@
$(B)/tests/test_cuda_emul: tests/test_cuda.c tests/test.h src/kernels/cuda/kernels_cuda.h $(EMUL_OBJ) $(EMUL_CPU_OBJ)
	@mkdir -p $(@D) $(B)/emul; $(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $(B)/emul/test_cuda.o
	$(CXX) $(SAN) -pthread -o $@ $(B)/emul/test_cuda.o $(EMUL_OBJ) $(EMUL_CPU_OBJ) -fopenmp -lopenblas -lm
# The whole model through the emulated kernels against the (sanitized) CPU library.
$(B)/emul/src/model/flow_cuda.o: src/model/flow_cuda.c src/model/model.h src/model/backend.h src/kernels/cuda/kernels_cuda.h
	@mkdir -p $(@D); $(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@
$(B)/tests/test_flow_cuda_emul: tests/test_flow_cuda.c tests/test.h tests/model_util.h $(B)/emul/src/model/flow_cuda.o $(EMUL_OBJ) $(B)/libcglow_asan.a
	@mkdir -p $(@D) $(B)/emul; $(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $(B)/emul/test_flow_cuda.o
	$(CXX) $(SAN) -pthread -o $@ $(B)/emul/test_flow_cuda.o $(B)/emul/src/model/flow_cuda.o $(EMUL_OBJ) \
		$(B)/libcglow_asan.a $(LDLIBS)
# The command-line tool on the emulated device (ASan), for tests/cli/test_device.sh: --device cuda
# end to end (train, resume, logprob, sample, infer) on any machine.
$(B)/cglow_emul: $(ASANCLI_OBJ) $(B)/emul/src/model/flow_cuda.o $(EMUL_OBJ) $(B)/libcglow_asan.a
	$(CXX) $(SAN) -pthread -o $@ $(ASANCLI_OBJ) -Wl,-u,flow_backend_cuda $(B)/emul/src/model/flow_cuda.o $(EMUL_OBJ) \
		$(B)/libcglow_asan.a $(LDLIBS)
# In `make test` when $(CXX) has C++20's <barrier> (EMUL=0 leaves it out).
HASH := \#
EMUL ?= $(shell echo '$(HASH)include <barrier>' | $(CXX) -x c++ -std=c++20 -fsyntax-only - >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(EMUL),1)
TEST_BIN += $(B)/tests/test_cuda_emul $(B)/tests/test_flow_cuda_emul $(B)/cglow_emul
endif

# `make cuda`: the kernels, their test and bench (no CPU libraries needed). `make cuda-model`: also
# the tool with --device cuda, the whole-model test and bench (OpenBLAS, FFTW, libpng, cJSON).
# `make gpu-bundle`: those three built for any x86-64-v3 machine, with copies of the shared
# libraries they need that a GPU image may lack, in build/gpu-bundle (bench/gpu_check.sh uses it).
ifeq ($(CUDA),1)
cuda: $(B)/libcglow_cuda.a $(B)/tests/test_cuda $(B)/bench/bench_cuda
cuda-model: cuda $(B)/cglow $(B)/tests/test_flow_cuda $(B)/bench/bench_flow_cuda
CUDA_TEST_BIN := $(B)/tests/test_cuda $(B)/tests/test_flow_cuda
BUNDLE_LIBS := libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libfftw3f.so.3 libfftw3.so.3 libpng16.so.16 \
               libcjson.so.1 libz.so.1 libgomp.so.1
gpu-bundle:
	@$(MAKE) --no-print-directory B=$(B)/bundle-build ARCH=-march=x86-64-v3 cuda-model
	@rm -rf $(B)/gpu-bundle; mkdir -p $(B)/gpu-bundle/lib
	cp $(B)/bundle-build/cglow $(B)/bundle-build/tests/test_flow_cuda $(B)/bundle-build/tests/test_cuda \
		$(B)/bundle-build/bench/bench_flow_cuda $(B)/bundle-build/bench/bench_cuda $(B)/gpu-bundle/
	strip $(B)/gpu-bundle/cglow $(B)/gpu-bundle/test_flow_cuda $(B)/gpu-bundle/test_cuda $(B)/gpu-bundle/bench_flow_cuda \
		$(B)/gpu-bundle/bench_cuda
	@for l in $(BUNDLE_LIBS); do \
		p=$$(ldd $(B)/gpu-bundle/cglow | awk -v l=$$l '$$1 == l { print $$3 }'); \
		if [ -n "$$p" ]; then cp -L "$$p" $(B)/gpu-bundle/lib/; fi; done
	@git rev-parse HEAD > $(B)/gpu-bundle/COMMIT 2>/dev/null || true
	@du -sh $(B)/gpu-bundle; ls $(B)/gpu-bundle $(B)/gpu-bundle/lib
else
cuda cuda-model gpu-bundle:
	@echo "make $@: no nvcc found (set NVCC=/path/to/nvcc)"; exit 1
CUDA_TEST_BIN :=
endif

deps:
	@bash scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all $(B)/cglow_asan $(TEST_BIN) $(CUDA_TEST_BIN)
	@bash tests/run_tests.sh

demo: deps
	@$(MAKE) --no-print-directory all
	$(B)/cglow demo --out report

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
