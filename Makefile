# pare - build, test, run. `make` builds build/pare and build/libpare.a.
#   make check   install dependencies (Debian), build, run the whole test suite (+ ASan/UBSan)
#   make run     install dependencies, build, run the main job on pare's default model
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Itools \
           -Wmissing-prototypes -Iinclude -Isrc -fopenmp -fPIC $(OPT) -g
LDLIBS  += -lopenblas -lcjson -lpcre2-8 -lm -fopenmp
ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

SRC      := $(sort $(wildcard src/*.c src/*/*.c))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
TESTS    := $(sort $(wildcard tests/test_*.c))
TESTBINS := $(TESTS:tests/%.c=$(BUILD)/tests/%)

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c

all: $(BUILD)/pare $(BUILD)/libpare.so $(TESTBINS)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -c $< -o $@
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -c $< -o $@

$(BUILD)/libpare.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

VERSION  := 0.1.0
$(BUILD)/libpare.so: $(OBJ)
	$(CC) -shared -Wl,-soname,libpare.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make install [PREFIX=/usr/local] [DESTDIR=]: pare, libpare.a, libpare.so, pare.h, pare.pc
PREFIX   ?= /usr/local
install: $(BUILD)/pare $(BUILD)/libpare.a $(BUILD)/libpare.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/pare $(DESTDIR)$(PREFIX)/bin/pare
	install -m 644 $(BUILD)/libpare.a $(DESTDIR)$(PREFIX)/lib/libpare.a
	install -m 755 $(BUILD)/libpare.so $(DESTDIR)$(PREFIX)/lib/libpare.so.$(VERSION)
	ln -sf libpare.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libpare.so.0
	ln -sf libpare.so.0 $(DESTDIR)$(PREFIX)/lib/libpare.so
	install -m 644 include/pare.h $(DESTDIR)$(PREFIX)/include/pare.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' scripts/pare.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/pare.pc

CLI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tools/*.c)))

$(BUILD)/pare: $(CLI_OBJ) $(BUILD)/libpare.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libpare.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@sh scripts/setup.sh

test: all
	@sh scripts/run_tests.sh $(BUILD)

check: deps
	$(MAKE) all
	sh scripts/run_tests.sh build
	$(MAKE) SAN=1 all
	PARE_SAN=1 sh scripts/run_tests.sh build-san
	sh fuzz/run.sh $(FUZZ_SECONDS) build-fuzz

# make fuzz [FUZZ_SECONDS=600]: libFuzzer targets (clang, ASan + UBSan) for the GGUF,
# safetensors, config.json, tokenizer.json, SentencePiece and llama2.c parsers, each run
# FUZZ_SECONDS on a seed corpus made from ../shared/data (check runs them 10 s each)
FUZZ_SECONDS ?= 10
fuzz: $(BUILD)/pare
	sh fuzz/run.sh $(FUZZ_SECONDS) build-fuzz

run: deps
	$(MAKE) all
	sh scripts/demo.sh

clean:
	rm -rf build build-san build-fuzz build-fuzz.build.log

.PHONY: all deps test check run clean install fuzz
-include $(OBJ:.o=.d) $(TESTBINS:=.d) $(CLI_OBJ:.o=.d)
