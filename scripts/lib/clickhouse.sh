# Sourced by scripts: start a local ClickHouse server (Debian's 18.16 or any
# newer one on PATH) with its data under a given directory.
#
#   source scripts/lib/clickhouse.sh
#   ch_start DIR HTTP_PORT TCP_PORT      # sets CH_PID; returns once /ping answers
#     optional: CH_MAX_MEMORY (bytes per query, default 4e9), CH_EXTRA_CONFIG
#     (XML elements added to config.xml, e.g. cache sizes)
#   wait_http URL WHAT [TRIES]           # polls URL until it answers 2xx

wait_http() { # url, what, tries (0.5 s apart)
  local url="$1" what="$2" tries="${3:-120}"
  for _ in $(seq 1 "$tries"); do
    if python3 - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
PY
    sleep 0.5
  done
  echo "error: $what did not come up ($url)" >&2
  return 1
}

ch_start() { # dir, http port, tcp port
  local dir="$1" http="$2" tcp="$3"
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  cat >"$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>${CH_MAX_MEMORY:-4000000000}</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <max_concurrent_queries>200</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  ${CH_EXTRA_CONFIG:-}
</yandex>
XML
  local bin
  bin="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
  "$bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  CH_PID=$!
  wait_http "http://127.0.0.1:$http/ping" ClickHouse
}
