#!/usr/bin/env bash
# Installs the pinned Claude Code CLI (package.json / package-lock.json beside this script) into
# tests/claude-code/node_modules, pre-warms the npx cache for the fake MCP server, and prints the absolute
# path of the `claude` executable on stdout (everything else goes to stderr).
#
# Idempotent: when the installed tree matches the lock file and `claude --version` reports the pinned
# version, and the npx cache is warm, it only prints the path (~0.1 s).
# Needs node + npm and the npm registry; nothing else from the network.
#
#   claude="$(tests/claude-code/install.sh)"
#   FORCE=1 tests/claude-code/install.sh    # reinstall from scratch
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

log() { printf 'install.sh: %s\n' "$*" >&2; }

# Test projects run in parallel and may all install on first use: one at a time (the others then find it done).
exec 9>"$here/.install.lock"
flock 9

command -v node >/dev/null || { log "node is not on PATH"; exit 1; }
command -v npm >/dev/null || { log "npm is not on PATH"; exit 1; }

pkg='@anthropic-ai/claude-code'
pinned="$(node -p "require('./package.json').dependencies['$pkg']")"
claude="$here/node_modules/.bin/claude"
cli_stamp="$here/node_modules/.corral-install-stamp"
npm_cache="$here/.npm-cache"
npx_stamp="$npm_cache/.corral-npx-stamp"
fake_mcp="$here/fake-mcp"

# npm settings that must not come from the user's config: scripts on (the postinstall copies the native
# binary into place), optional deps on (the binary ships in @anthropic-ai/claude-code-<platform>), and the
# package's "engines: node >= 22" is only advisory (the native binary does not use the local node at all).
export npm_config_ignore_scripts=false npm_config_omit= npm_config_engine_strict=false \
       npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

installed_version() {
  # `claude --version` prints e.g. "2.1.330 (Claude Code)"; the npm placeholder stub prints an error and exits 1.
  "$claude" --version 2>/dev/null | awk 'NR==1 {print $1}' || true
}

# 1. The CLI, from the lock file.
want_cli="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ -n "${FORCE:-}" || ! -x "$claude" || ! -f "$cli_stamp" || "$(cat "$cli_stamp")" != "$want_cli" \
      || "$(installed_version)" != "$pinned" ]]; then
  log "installing $pkg@$pinned with npm ci (~10 s, ~370 MB)"
  rm -f "$cli_stamp"
  npm ci --include=optional --no-audit --no-fund --loglevel=error >&2
  if [[ "$(installed_version)" != "$pinned" ]]; then
    # The placeholder bin/claude.exe is still there: the postinstall did not run or found no platform package.
    log "claude --version did not report $pinned; running the package's postinstall by hand"
    (cd "node_modules/$pkg" && node install.cjs) >&2
  fi
  got="$(installed_version)"
  if [[ "$got" != "$pinned" ]]; then
    log "installed claude reports '${got:-nothing}', expected $pinned:"
    "$claude" --version >&2 || true
    exit 1
  fi
  echo "$want_cli" > "$cli_stamp"
  log "ok: $("$claude" --version)"
fi

# 2. Pre-warm `npx -y <fake-mcp dir>` in the npm cache the tests use (npm_config_cache=tests/claude-code/.npm-cache),
#    so the first MCP start in a test does not pay for it. npx keys the cache by the package's absolute path and
#    never refreshes a linked package's `bin`, hence the stamp (content + location) and the clean start.
want_npx="$(cat "$fake_mcp/package.json" "$fake_mcp/server.js" | sha256sum | cut -d' ' -f1) $here"
if [[ -n "${FORCE:-}" || ! -f "$npx_stamp" || "$(cat "$npx_stamp")" != "$want_npx" ]]; then
  log "pre-warming npx for $fake_mcp"
  rm -rf "$npm_cache/_npx"
  npm_config_cache="$npm_cache" npx -y "$fake_mcp" </dev/null >/dev/null
  echo "$want_npx" > "$npx_stamp"
fi

echo "$claude"
