#!/usr/bin/env sh
# Install the Debian packages the test suite drives for real: Chromium (browser tests)
# with a Chinese font for readable screenshots, PostgreSQL (the store runs on SQLite
# and PostgreSQL alike) and Redis (WeChat dedup keys and the access token when REDIS_URL is set).
set -e
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -x /usr/bin/pg_ctlcluster ] || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$missing fonts-wqy-microhei"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "error: missing Debian packages:$missing (install them as root: apt-get install$missing)" >&2; exit 1
fi
echo ">> installing Debian packages:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
