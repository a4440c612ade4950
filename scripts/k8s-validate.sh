#!/bin/bash
# SPDX-License-Identifier: MIT
#
# k8s-validate.sh BUILD_DIR - the manifests of deploy/kubernetes, offline:
# no cluster is needed. Installs the npm packages kubernetes-models (the
# Kubernetes OpenAPI schemas, compiled into validators) and js-yaml, at
# the versions below, into BUILD_DIR/k8s-validate (once), then runs
# scripts/k8s-validate.js: every object against its kind's schema, the
# objects against each other, loopfastd's settings and the systemd unit's
# capabilities, and broken copies that the validator must reject.
# Installs nodejs and npm from Debian (as root) when missing; npm needs
# the npm registry the first time.
#
# Prints "N passed, N failed" last.
set -uo pipefail

ME=k8s-validate.sh
BUILD=${1:?usage: k8s-validate.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
# kubernetes-models 4.5 carries the schemas of Kubernetes 1.33 and runs on
# Debian 12's Node.js 18 (5.x needs Node.js 22).
K8S_MODELS=kubernetes-models@4.5.1
K8S_VERSION=1.33
JS_YAML=js-yaml@4.1.0

# shellcheck source=scripts/checks.sh
. "$HERE/checks.sh"

# Node.js from Debian, unless one is on PATH already (it need not be
# Debian's).
node_install() {
	command -v node >/dev/null && command -v npm >/dev/null && return 0
	tools_install nodejs npm
}

# BUILD/k8s-validate/node_modules, installed once per set of versions.
modules_install() {
	local dir=$1 want="$K8S_MODELS $JS_YAML"

	if [[ -d $dir/node_modules && $(cat "$dir/versions" 2>/dev/null) == "$want" ]]; then
		say "npm packages: cached in $dir ($want)"
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir" || die "mkdir $dir"
	echo '{ "private": true }' >"$dir/package.json"
	say "npm install $want (into $dir)"
	# shellcheck disable=SC2086
	if ! (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts \
		--no-save $want) >"$dir/npm.log" 2>&1; then
		tail -n 15 "$dir/npm.log" >&2
		rm -rf "$dir/node_modules"
		die "npm install $want failed (above): it needs the npm registry ($(npm config get registry)); K8S_TEST=0 skips this test"
	fi
	echo "$want" >"$dir/versions"
}

main() {
	local dir out

	node_install
	dir=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)/k8s-validate
	modules_install "$dir"
	ok "$K8S_MODELS (Kubernetes $K8S_VERSION schemas) and $JS_YAML on node $(node --version)"
	out=$(NODE_PATH=$dir/node_modules node "$HERE/k8s-validate.js" \
		"$SRC/deploy/kubernetes" "$SRC/systemd/loopfast.service.in" 2>&1)
	while IFS= read -r line; do
		case $line in
		"ok   "*) ok "${line#ok   }" ;;
		"FAIL "*) bad "${line#FAIL }" ;;
		*) say "$line" ;;
		esac
	done <<<"$out"
	grep -q '^ok   rejected:' <<<"$out" ||
		bad "no broken copy was tried"
	checks_summary
}

main
