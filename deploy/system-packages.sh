#!/usr/bin/env bash
# Installs the Debian packages the tests run for real, when missing:
#   redis-server  the fleet backend (tests/fleet.rs starts its own servers on free ports)
#   openssl       a throwaway CA and certificate for the TLS test
#   chromium, chromium-driver (and fonts-liberation, so pages render the same everywhere)
#                 the real-browser tests (tests/browser/run.sh drives /usr/bin/chromium through
#                 /usr/bin/chromedriver)
#   nodejs, npm   the OpenID provider that plays the pool's managed-login domain (tests/oidc/,
#                 its npm packages installed by tests/oidc/start.sh from the lockfile)
#   nginx         the forward-auth test (tests/forward_auth.rs starts /usr/sbin/nginx with
#                 deploy/forward-auth/nginx.conf in a scratch prefix, auth_request in front of
#                 an echo app); its service is not started (policy-rc.d below)
# Uses apt-get as root, or through sudo, without recommended packages. Nothing is started here.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Debian's own paths: the browser tests look for these two, not for another Chrome on PATH.
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
# Debian's nginx is built with the auth_request module.
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [[ ! -d /usr/share/fonts/truetype/liberation ]]; then
    missing+=(fonts-liberation)
fi
((${#missing[@]} == 0)) && exit 0

echo "system-packages.sh: installing ${missing[*]} (apt-get)" >&2
as_root=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "system-packages.sh: need root or sudo to install ${missing[*]}" >&2
        exit 1
    }
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# The package's service is not wanted (and no init runs it here); policy-rc.d keeps postinst
# from starting one on 6379.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod +x "$policy"
    made_policy=1
fi
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if ((made_policy)); then "${as_root[@]}" rm -f "$policy"; fi
command -v redis-server >/dev/null 2>&1 && [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver && -x /usr/sbin/nginx ]]
