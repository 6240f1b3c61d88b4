#!/usr/bin/env bash
# Checks (and where it can, installs) what the local stack needs besides Go: moto_server for SQS, the
# Pub/Sub emulator (with a JDK) and node with the npm package rhea for the Service Bus fake (internal/sbfake).
# Prints one line per item.
set -uo pipefail
say() { echo "[prereqs] $*" >&2; }
ok=1
if ! command -v moto_server >/dev/null 2>&1; then
  say "moto_server missing: installing with pip (moto[server]==5.2.1)"
  if command -v pip >/dev/null 2>&1 && pip install --quiet 'moto[server]==5.2.1'; then
    hash -r
  fi
  command -v moto_server >/dev/null 2>&1 || { say "moto_server still missing: run \`pip install 'moto[server]==5.2.1'\`"; ok=0; }
fi
emu=/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator
if ! command -v cloud-pubsub-emulator >/dev/null 2>&1 && [ ! -x "$emu" ]; then
  say "Pub/Sub emulator missing: installing with apt (google-cloud-cli-pubsub-emulator)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q google-cloud-cli-pubsub-emulator >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q google-cloud-cli-pubsub-emulator >/dev/null 2>&1; }
  fi
  [ -x "$emu" ] || { say "Pub/Sub emulator still missing: run \`apt-get install google-cloud-cli-pubsub-emulator\`"; ok=0; }
fi
if ! command -v java >/dev/null 2>&1; then
  say "java missing (the Pub/Sub emulator needs it): installing openjdk-17-jre-headless"
  [ "$(id -u)" = 0 ] && apt-get install -y -q openjdk-17-jre-headless >/dev/null 2>&1
  command -v java >/dev/null 2>&1 || { say "java still missing: run \`apt-get install openjdk-17-jre-headless\`"; ok=0; }
fi
rhea_dir="${KUBEDISPATCH_CACHE:-$HOME/.cache/kubedispatch}/node/rhea-3.0.5"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node or npm missing (the Service Bus fake needs them): installing nodejs and npm with apt"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q nodejs npm >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nodejs npm >/dev/null 2>&1; }
    hash -r
  fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "node or npm still missing: run \`apt-get install nodejs npm\` (the Service Bus fake runs on node)"; ok=0
elif [ ! -f "$rhea_dir/node_modules/rhea/package.json" ]; then
  say "rhea 3.0.5 missing (the Service Bus fake's AMQP library): installing with npm into $rhea_dir"
  mkdir -p "$rhea_dir" && npm install --prefix "$rhea_dir" --no-audit --no-fund --silent rhea@3.0.5 >/dev/null 2>&1
  [ -f "$rhea_dir/node_modules/rhea/package.json" ] || { say "rhea still missing: run \`npm install --prefix $rhea_dir --no-audit --no-fund rhea@3.0.5\`"; ok=0; }
fi
bash "$(dirname "$0")/prereqs-realnode.sh" || ok=0 # containerd, runc, CNI plugins for the real node (e2e/realnode)
[ $ok = 1 ] || exit 1
