#!/usr/bin/env bash
# Builds the packages and checks them as an administrator would meet them: installs the .deb
# with dpkg, checks its files, user, permissions and the binary, verifies the systemd unit,
# and lists the .rpm. Needs root (it installs a package); the package is purged at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "check-packages: skipped, it installs a package and needs root" >&2
  exit 0
fi
need=()
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

./packaging/build-packages.sh
deb=$(ls -1 target/debian/bt-watchdog_*.deb | tail -n 1)
rpm_file=$(ls -1 target/generate-rpm/bt-watchdog-*.rpm | tail -n 1)

fail() { echo "check-packages: FAILED: $*" >&2; exit 1; }
trap 'dpkg --purge bt-watchdog >/dev/null 2>&1 || true' EXIT

echo "==> dpkg -i $deb"
dpkg -i "$deb" >/dev/null
/usr/bin/bt-watchdog --version | grep -q "^bt-watchdog " || fail "bt-watchdog --version"
getent passwd bt-watchdog >/dev/null || fail "no bt-watchdog system user"
[ "$(getent passwd bt-watchdog | cut -d: -f7)" = "/usr/sbin/nologin" ] || fail "the system user has a login shell"
[ "$(stat -c '%a %U' /var/lib/bt-watchdog)" = "700 bt-watchdog" ] || fail "/var/lib/bt-watchdog is $(stat -c '%a %U' /var/lib/bt-watchdog)"
[ "$(stat -c '%a %U' /etc/bt-watchdog/secrets)" = "700 root" ] || fail "/etc/bt-watchdog/secrets is $(stat -c '%a %U' /etc/bt-watchdog/secrets)"
for f in /etc/bt-watchdog/config.toml /lib/systemd/system/bt-watchdog.service \
         /usr/share/man/man1/bt-watchdog.1.gz /usr/share/bash-completion/completions/bt-watchdog \
         /usr/share/zsh/vendor-completions/_bt-watchdog /usr/share/fish/vendor_completions.d/bt-watchdog.fish \
         /usr/share/bt-watchdog/dashboards/bt-watchdog.json /usr/share/bt-watchdog/dashboards/alerts.yml \
         /usr/share/bt-watchdog/dashboards/runbook.md \
         /usr/share/doc/bt-watchdog/README.md; do
  [ -f "$f" ] || fail "missing $f"
done
dpkg-query -W -f='${Conffiles}\n' bt-watchdog | grep -q '/etc/bt-watchdog/config.toml' || fail "config.toml is not a conffile"
state=$(systemctl is-enabled bt-watchdog 2>/dev/null || true)
[ "$state" != "enabled" ] || fail "the service is enabled before it is configured"
echo "==> systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/bt-watchdog.service
echo "==> the example configuration passes check-config (with a dummy credential)"
creds=$(mktemp -d)
printf 'dummy\n' > "$creds/secrets_support"
# Secrets readable by others are refused, as systemd's credentials never are.
chmod 600 "$creds/secrets_support"
CREDENTIALS_DIRECTORY="$creds" /usr/bin/bt-watchdog check-config --config /etc/bt-watchdog/config.toml
rm -rf "$creds"
echo "==> rpm -qlp $rpm_file"
rpm -qlp "$rpm_file" | tee /dev/stderr | grep -q '^/usr/bin/bt-watchdog$' || fail "the rpm lacks /usr/bin/bt-watchdog"
rpm -qp --scripts "$rpm_file" | grep -q useradd || fail "the rpm does not create its user"
echo "check-packages: all checks passed"
