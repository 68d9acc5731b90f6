#!/bin/sh
# Secrets from files (Docker secrets): NAME_FILE=/run/secrets/x sets NAME to the file's
# first line, for the variables that Dagster and the pipeline read only from the
# environment. (KEHA_SMTP_PASSWORD_FILE is read by the pipeline itself.)
set -eu
for name in DAGSTER_PG_PASSWORD KEHA_PSEUDONYM_KEY; do
    eval "file=\${${name}_FILE:-}"
    if [ -n "$file" ]; then
        value=$(head -n 1 "$file")
        if [ -z "$value" ]; then
            echo "error: ${name}_FILE=$file is empty or unreadable; put the secret on its first line" >&2
            exit 2
        fi
        export "$name=$value"
        unset "${name}_FILE"
    fi
done
exec "$@"
