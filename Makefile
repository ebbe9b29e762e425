# stellapack: PGXS build of the extension, its two client programs and
# the test, demo and bench entry points.

EXTENSION = stellapack
MODULE_big = stellapack
OBJS = \
	src/stellapack.o \
	src/manifest.o \
	src/sha256.o \
	src/registry.o \
	src/stream.o \
	src/announce.o \
	src/executor.o \
	src/launcher.o \
	src/engine.o \
	src/bridge.o

DATA = $(wildcard sql/stellapack--*.sql)
SHLIB_LINK = -ljansson

# pg_regress suite: test/sql/*.sql against test/expected/*.out
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test/results \
	--load-extension=stellapack --dbname=stellapack_regress

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The client programs: plain libpq and jansson, no server headers.
CLIENT_CFLAGS = -std=gnu99 -O2 -g -Wall -Wextra -Werror \
	-I$(shell $(PG_CONFIG) --includedir)
CLIENT_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq -ljansson
CLIENTS = src/bin/stellapack src/bin/stellapack-runner

src/bin/%: src/bin/%.c
	$(CC) $(CLIENT_CFLAGS) -o $@ $< $(CLIENT_LIBS)

all: $(CLIENTS)

install: install-clients
install-clients: $(CLIENTS)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(CLIENTS) '$(DESTDIR)$(bindir)/'

uninstall: uninstall-clients
uninstall-clients:
	rm -f $(addprefix '$(DESTDIR)$(bindir)'/,$(notdir $(CLIENTS)))

clean: clean-clients
clean-clients:
	rm -f $(CLIENTS)
	rm -rf test/results test/unit/build

.PHONY: test demo bench install-clients uninstall-clients clean-clients

# The README's two commands, plus the benchmark.
test:
	./test/run-all.sh

demo:
	./examples/demo.sh

bench:
	./bench/run.sh
