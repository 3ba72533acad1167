#!/bin/sh
# Install the Debian 12 packages that building, testing and the demo need,
# but only those that are missing, so a second run costs no time.
set -eu

packages="build-essential pkg-config libevent-dev libcurl4-openssl-dev libyajl-dev
libhiredis-dev libinih-dev libcmocka-dev libssl-dev redis-server redis-tools
openssl jq curl procps prometheus socat systemd"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing; install them as root (apt-get install$missing)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packages such as redis-server and prometheus start their service on
# install; the tests start their own on free ports, so nothing may start here.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
apt-get update -qq
status=0
apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
[ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
exit $status
