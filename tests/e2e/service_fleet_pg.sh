#!/usr/bin/env bash
# service_fleet.sh on a PostgreSQL archive of its own (tests/archive/pg.sh),
# the boxes in meterkeyd: the fleet's whole life through the service on
# the second backend.
FLEET_PG=1 exec bash "$(dirname "$0")/service_fleet.sh" "$@"
