# edgefed: `make run` starts a local three-site fleet, `make test` runs the whole suite.
# Both set up everything they need first (virtual environment, Python and Debian packages).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_STAMP := .cache/system-deps
# Debian packages the suite needs: a PostgreSQL server for the PostgreSQL run of the suite,
# debootstrap for the Debian root file system the provisioning test runs its roles in,
# chromium for the dashboard's browser tests (Playwright drives the system browser).
DEBIAN_PACKAGES := postgresql debootstrap chromium
# The QEMU driver (docs/qemu.md): QEMU and qemu-img; the guest image's build tools
# (busybox-static for its userland; syslinux, mtools, dosfstools and fdisk for its boot
# disk); dnsmasq and nftables for the guests' networks; lz4 and zstd to read kernels
# compressed with them (drivers/qemu/pvh.py). Without recommends:
# qemu-system-x86 alone recommends a desktop's worth of packages.
QEMU_PACKAGES := qemu-system-x86 qemu-utils busybox-static syslinux syslinux-common mtools \
	dosfstools fdisk dnsmasq-base nftables lz4 zstd
GUEST_IMAGE := .cache/guest-image
PYTEST_ARGS ?=
# Test processes: the suite mostly waits on site processes and CLI calls.
JOBS ?= 3
# The tests again with every site on PostgreSQL (a throw-away server the suite starts), for
# what differs between the two databases (docs/testing.md says why each is here): the
# store's SQL, the sync engine over it, the API tests of constraints and their 409s, JSON
# columns, typed filters and lengths, ordering and paging, racing writes and the locks
# that order them, and durability. The rest ran in the first pass, and a test that opens
# no database on the server is left out of this one by tests/conftest.py.
POSTGRES_TESTS ?= tests/unit/store tests/unit/sync tests/multisite/test_sync.py \
	tests/e2e/test_durability.py tests/unit/api/test_host_command_queue.py \
	$(addprefix tests/unit/identity/test_,projects_users.py roles_assignments.py \
		mappings_api.py app_credential_rules.py catalog_appcreds.py) \
	$(addprefix tests/unit/image/test_image_,listing.py access.py members.py lifecycle.py \
		patch.py api.py) \
	$(addprefix tests/unit/network/test_,networks.py subnets.py ports.py security_groups.py \
		network_quotas.py) \
	$(addprefix tests/unit/compute/test_,compute_api.py volume_attachments.py \
		boot_from_volume.py) \
	$(addprefix tests/unit/volume/test_,volumes.py actions.py quotas_and_metadata.py \
		snapshots_and_types.py) \
	tests/unit/fleet/test_alarm_queries.py \
	$(addprefix tests/unit/sites/test_,registry_merge.py revocation_feed.py)

.PHONY: run test test-sqlite lint format unit e2e bench migrations clean system-deps venv \
	guest-image

run: venv system-deps guest-image
	$(BIN)/edgefed up --compute-driver auto

test: venv system-deps guest-image lint
	$(BIN)/pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile --durations=25 $(PYTEST_ARGS)
	$(BIN)/pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile --database=postgres \
		$(POSTGRES_TESTS)

# The suite on SQLite only (faster feedback while developing).
test-sqlite: venv system-deps guest-image lint
	$(BIN)/pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps: $(SYSTEM_STAMP)

$(SYSTEM_STAMP): Makefile
	@mkdir -p .cache
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	bare=""; for p in $(QEMU_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || bare="$$bare $$p"; done; \
	if [ -n "$$missing$$bare" ]; then \
	  echo "installing Debian packages:$$missing$$bare"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q || exit 1; \
	  if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing || exit 1; fi; \
	  if [ -n "$$bare" ]; then DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$bare || exit 1; fi; \
	fi
	touch $(SYSTEM_STAMP)

# The tiny guest the QEMU driver's tests, make run and the benchmarks boot: built from
# Debian packages (apt-get download) into .cache/guest-image, a no-op when up to date.
guest-image: venv system-deps
	$(BIN)/python -m edgefed.guest_image --out $(GUEST_IMAGE)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

unit: venv
	$(BIN)/pytest -q tests/unit tests/multisite

e2e: venv system-deps guest-image
	$(BIN)/pytest -q tests/e2e

bench: venv system-deps guest-image
	$(BIN)/python -m bench

# Pre-release: regenerate the single initial migration from the tables.
migrations: venv
	rm -f src/edgefed/store/migrations/versions/0001_initial.py
	@# Hand-written migrations on top (0002_sync_triggers) step aside while 0001 is regenerated.
	mkdir -p .cache/migrations-on-top && mv src/edgefed/store/migrations/versions/0002_*.py .cache/migrations-on-top/
	$(BIN)/python -m edgefed.store.autogen; status=$$?; \
	  mv .cache/migrations-on-top/0002_*.py src/edgefed/store/migrations/versions/; exit $$status
	echo 0002_sync_triggers > src/edgefed/store/migrations/HEAD
	$(BIN)/ruff check --fix -q src/edgefed/store/migrations/versions/0001_initial.py
	$(BIN)/ruff format -q src/edgefed/store/migrations/versions/0001_initial.py

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
