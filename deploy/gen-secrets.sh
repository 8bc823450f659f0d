#!/usr/bin/env sh
# Writes the secrets files deploy/compose.yaml mounts under /run/secrets (one random value per
# file), into DIR (default: deploy/secrets next to this script). Existing files are kept, so
# running it again never rotates a key that encrypted data:
#   sh deploy/gen-secrets.sh && docker compose -f deploy/compose.yaml up --build
set -eu
dir="${1:-$(dirname "$0")/secrets}"
mkdir -p "$dir"
chmod 700 "$dir"
put() { # name, command printing the value
  if [ ! -s "$dir/$1" ]; then
    (umask 077 && sh -c "$2" > "$dir/$1")
    echo "gen-secrets: wrote $dir/$1"
  fi
}
put admin_token "openssl rand -hex 32"             # api.admin_token: the bootstrap bearer token
put contact_id_key "openssl rand -hex 32"          # api.contact_id_key: never change it later
put codec_key "openssl rand -base64 32"            # temporal.codec.keys: payload encryption
put whatsapp_app_secret "openssl rand -hex 32"     # api.whatsapp_app_secret: Meta app secret
put whatsapp_verify_token "openssl rand -hex 16"   # api.whatsapp_verify_token
