#!/bin/sh
# First start: initdb with POSTGRES_USER/POSTGRES_PASSWORD (scram) and create POSTGRES_DB; then run postgres.
set -eu
bin=/usr/lib/postgresql/15/bin
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp) && printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile" && chown postgres "$pwfile"
  su postgres -s /bin/sh -c "$bin/initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile='$pwfile' --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    su postgres -s /bin/sh -c "$bin/postgres -D '$PGDATA' -c listen_addresses='' & pid=\$!; \
      until $bin/pg_isready -q -h /run/postgresql; do sleep 0.2; done; \
      $bin/createdb -h /run/postgresql -U '$POSTGRES_USER' '$POSTGRES_DB'; kill \$pid; wait \$pid"
  fi
fi
exec su postgres -s /bin/sh -c "exec $bin/postgres -D '$PGDATA'"
