#!/usr/bin/env bash
# Refreshes the bot lists vendored in shared/data/ (docs/bot-screening.md)
# from their registries, with the registries' own clients:
#
#   npm crawler-user-agents  -> crawler-user-agents.json (exactly as shipped;
#                               shared/build.rs compiles it) + .LICENSE
#   crate isbot              -> isbot-patterns.txt (the crate's
#                               src/bot_regex_patterns.txt, as shipped)
#                               + isbot.LICENSE
#
# Environment:
#   CRAWLER_USER_AGENTS_VERSION  npm version (default: latest)
#   ISBOT_VERSION                crate version (default: latest)
#
# Afterwards: review the diff, run
#   cargo test -p clickstitch-shared
#   cargo test -p clickstitch-shared --test bot_corpus -- --nocapture
# (an override whose pattern left the list fails the unit tests: remove it; a
# new pattern that matches real browsers fails the corpus test: add an
# override with its reason), then update the versions and figures in
# shared/data/README.md, shared/src/bot.rs, shared/src/bot/patterns.rs and
# docs/bot-screening.md.
set -euo pipefail
cd "$(dirname "$0")/.."
crawler_version="${CRAWLER_USER_AGENTS_VERSION:-latest}"
isbot_version="${ISBOT_VERSION:-latest}"
data=shared/data
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# npm crawler-user-agents
echo "npm pack crawler-user-agents@$crawler_version" >&2
tarball="$(cd "$tmp" && npm pack --silent "crawler-user-agents@$crawler_version" | tail -1)"
mkdir "$tmp/cua"
tar -xzf "$tmp/$tarball" -C "$tmp/cua"
python3 - "$tmp/cua/package/crawler-user-agents.json" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1], encoding="utf-8"))
assert isinstance(entries, list) and entries, "not a non-empty JSON list"
bad = [i for i, e in enumerate(entries) if not isinstance(e.get("pattern"), str)]
assert not bad, f"entries without a string pattern: {bad[:10]}"
PY
cp "$tmp/cua/package/crawler-user-agents.json" "$data/crawler-user-agents.json"
cp "$tmp/cua/package/LICENSE" "$data/crawler-user-agents.LICENSE"
crawler_resolved="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$tmp/cua/package/package.json")"

# crate isbot: a throwaway package depending on it; `cargo metadata` fetches
# the crate and says where its source is.
echo "cargo: isbot@$isbot_version" >&2
mkdir -p "$tmp/fetch-isbot/src"
touch "$tmp/fetch-isbot/src/lib.rs"
if [ "$isbot_version" = latest ]; then requirement='*'; else requirement="=$isbot_version"; fi
cat >"$tmp/fetch-isbot/Cargo.toml" <<EOF
[package]
name = "fetch-isbot"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
isbot = { version = "$requirement", default-features = false }

[workspace]
EOF
crate_dir="$(cargo metadata --quiet --format-version 1 --manifest-path "$tmp/fetch-isbot/Cargo.toml" |
    python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "isbot")
print(pkg["version"], os.path.dirname(pkg["manifest_path"]))')"
isbot_resolved="${crate_dir%% *}"
crate_dir="${crate_dir#* }"
patterns="$crate_dir/src/bot_regex_patterns.txt"
[ -s "$patterns" ] || { echo "isbot $isbot_resolved has no src/bot_regex_patterns.txt" >&2; exit 1; }
cp "$patterns" "$data/isbot-patterns.txt"
cp "$crate_dir/LICENSE" "$data/isbot.LICENSE"

echo "crawler-user-agents $crawler_resolved: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$data/crawler-user-agents.json") patterns" >&2
echo "isbot $isbot_resolved: $(grep -c . "$data/isbot-patterns.txt") patterns" >&2
git --no-pager diff --stat -- "$data" >&2 || true
