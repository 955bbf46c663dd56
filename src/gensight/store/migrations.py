"""Schema migrations as frozen SQL text: each step is what a release ran, never edited.

A store records the steps it has applied in ``schema_migrations``; at open it runs the
ones it lacks, in order. A fresh store is not built by replaying these: it is created
from ``gensight.store.schema`` and stamped with the latest version, and a test checks
that a migrated store and a fresh one have the same tables. A new step is added at the
end, as literal text, once its release ships.

DuckDB cannot add a primary key to an existing table, so step 5 recreates the record
tables with their natural keys and copies the rows into them, one per key. ClickHouse
cannot change a table's engine either: its step 4 copies each record table into a
ReplacingMergeTree and swaps the names (start one replica first for this upgrade: two
replicas running the swap at once would race).
"""

from __future__ import annotations

#: DuckDB: one list of statements per version, run in one transaction each.
DUCKDB: list[list[str]] = [
    [  # 1: calls, spans, content events
        'CREATE TABLE IF NOT EXISTS calls ("id" VARCHAR, "trace_id" VARCHAR, "span_id"'
        ' VARCHAR, "ts" TIMESTAMP, "duration_ms" DOUBLE, "source" VARCHAR, "producer"'
        ' VARCHAR, "parent_span_id" VARCHAR, "ttft_ms" DOUBLE, "app" VARCHAR,'
        ' "environment" VARCHAR, "provider" VARCHAR, "operation" VARCHAR, "request_model"'
        ' VARCHAR, "response_model" VARCHAR, "response_id" VARCHAR, "stream" BOOLEAN,'
        ' "input_tokens" BIGINT, "output_tokens" BIGINT, "cache_read_tokens" BIGINT,'
        ' "cache_write_tokens" BIGINT, "reasoning_tokens" BIGINT, "tokens_estimated"'
        ' BOOLEAN, "cost_usd" DOUBLE, "cost_source" VARCHAR, "reported_cost_usd" DOUBLE,'
        ' "status" VARCHAR, "error_class" VARCHAR, "http_status" INTEGER, "error_message"'
        ' VARCHAR, "finish_reasons" VARCHAR[], "temperature" DOUBLE, "top_p" DOUBLE,'
        ' "max_tokens" BIGINT, "frequency_penalty" DOUBLE, "presence_penalty" DOUBLE,'
        ' "seed" BIGINT, "user" VARCHAR, "session" VARCHAR, "tags" VARCHAR[],'
        ' "server_address" VARCHAR, "attempts" INTEGER, "input_messages" VARCHAR,'
        ' "output_messages" VARCHAR, "system_instructions" VARCHAR, "attributes" VARCHAR)',
        'CREATE TABLE IF NOT EXISTS spans ("trace_id" VARCHAR, "span_id" VARCHAR,'
        ' "parent_span_id" VARCHAR, "name" VARCHAR, "kind" VARCHAR, "ts" TIMESTAMP,'
        ' "duration_ms" DOUBLE, "status" VARCHAR, "status_message" VARCHAR, "app"'
        ' VARCHAR, "call_id" VARCHAR, "attributes" VARCHAR, "events" VARCHAR)',
        'CREATE TABLE IF NOT EXISTS content_events ("trace_id" VARCHAR, "span_id"'
        ' VARCHAR, "ts" TIMESTAMP, "seq" INTEGER, "kind" VARCHAR, "message" VARCHAR)',
    ],
    [  # 2: alert rules and their transitions
        "CREATE TABLE IF NOT EXISTS alert_rules (id VARCHAR, created_at TIMESTAMP, source"
        " VARCHAR, rule VARCHAR)",
        "CREATE TABLE IF NOT EXISTS alert_events (ts TIMESTAMP, rule_id VARCHAR, name"
        " VARCHAR, state VARCHAR, value DOUBLE, threshold DOUBLE, detail VARCHAR)",
    ],
    [  # 3: a trace is a point lookup (an index on spans.trace_id)
        "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)",
    ],
    [  # 4: leases
        "CREATE TABLE IF NOT EXISTS leases (name VARCHAR, holder VARCHAR, expires_at TIMESTAMP)",
    ],
    [  # 5: natural keys as primary keys (idempotent writes): recreate and copy, one row per key
        "DROP INDEX IF EXISTS spans_trace",
        "ALTER TABLE calls RENAME TO calls_v4",
        'CREATE TABLE IF NOT EXISTS calls ("id" VARCHAR, "trace_id" VARCHAR, "span_id"'
        ' VARCHAR, "ts" TIMESTAMP, "duration_ms" DOUBLE, "source" VARCHAR, "producer"'
        ' VARCHAR, "parent_span_id" VARCHAR, "ttft_ms" DOUBLE, "app" VARCHAR,'
        ' "environment" VARCHAR, "provider" VARCHAR, "operation" VARCHAR, "request_model"'
        ' VARCHAR, "response_model" VARCHAR, "response_id" VARCHAR, "stream" BOOLEAN,'
        ' "input_tokens" BIGINT, "output_tokens" BIGINT, "cache_read_tokens" BIGINT,'
        ' "cache_write_tokens" BIGINT, "reasoning_tokens" BIGINT, "tokens_estimated"'
        ' BOOLEAN, "cost_usd" DOUBLE, "cost_source" VARCHAR, "reported_cost_usd" DOUBLE,'
        ' "status" VARCHAR, "error_class" VARCHAR, "http_status" INTEGER, "error_message"'
        ' VARCHAR, "finish_reasons" VARCHAR[], "temperature" DOUBLE, "top_p" DOUBLE,'
        ' "max_tokens" BIGINT, "frequency_penalty" DOUBLE, "presence_penalty" DOUBLE,'
        ' "seed" BIGINT, "user" VARCHAR, "session" VARCHAR, "tags" VARCHAR[],'
        ' "server_address" VARCHAR, "attempts" INTEGER, "input_messages" VARCHAR,'
        ' "output_messages" VARCHAR, "system_instructions" VARCHAR, "attributes" VARCHAR,'
        ' PRIMARY KEY ("id"))',
        "INSERT INTO calls BY NAME SELECT * FROM calls_v4 WHERE id IS NOT NULL QUALIFY"
        " row_number() OVER (PARTITION BY id) = 1",
        "DROP TABLE calls_v4",
        "ALTER TABLE spans RENAME TO spans_v4",
        'CREATE TABLE IF NOT EXISTS spans ("trace_id" VARCHAR, "span_id" VARCHAR,'
        ' "parent_span_id" VARCHAR, "name" VARCHAR, "kind" VARCHAR, "ts" TIMESTAMP,'
        ' "duration_ms" DOUBLE, "status" VARCHAR, "status_message" VARCHAR, "app"'
        ' VARCHAR, "call_id" VARCHAR, "attributes" VARCHAR, "events" VARCHAR, PRIMARY KEY'
        ' ("trace_id", "span_id"))',
        "INSERT INTO spans BY NAME SELECT * FROM spans_v4 WHERE trace_id IS NOT NULL AND"
        " span_id IS NOT NULL QUALIFY row_number() OVER (PARTITION BY trace_id, span_id)"
        " = 1",
        "DROP TABLE spans_v4",
        "ALTER TABLE content_events RENAME TO content_events_v4",
        'CREATE TABLE IF NOT EXISTS content_events ("trace_id" VARCHAR, "span_id"'
        ' VARCHAR, "ts" TIMESTAMP, "seq" INTEGER, "kind" VARCHAR, "message" VARCHAR,'
        ' PRIMARY KEY ("trace_id", "span_id", "ts", "seq", "kind"))',
        "INSERT INTO content_events BY NAME SELECT * FROM content_events_v4 WHERE"
        " trace_id IS NOT NULL AND span_id IS NOT NULL AND ts IS NOT NULL AND seq IS NOT"
        " NULL AND kind IS NOT NULL QUALIFY row_number() OVER (PARTITION BY trace_id,"
        " span_id, ts, seq, kind) = 1",
        "DROP TABLE content_events_v4",
        "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)",
    ],
    [  # 6: the provider's request id (two reports of one failed call are one call)
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "upstream_request_id" VARCHAR',
    ],
    [  # 7 (#20): scores about calls, traces and sessions
        'CREATE TABLE IF NOT EXISTS scores ("id" VARCHAR, "ts" TIMESTAMP, "target" VARCHAR,'
        ' "target_id" VARCHAR, "name" VARCHAR, "value" DOUBLE, "label" VARCHAR, "comment"'
        ' VARCHAR, "source" VARCHAR, "author" VARCHAR, "app" VARCHAR, "trace_id" VARCHAR,'
        ' PRIMARY KEY ("id"))',
    ],
    [  # 8 (#14): Azure OpenAI's deployment and api-version
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "deployment" VARCHAR',
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "api_version" VARCHAR',
    ],
    [  # 9 (#19): cache opportunities (request/prefix hashes, prefix tokens), prompt
        # templates (each call's template, the miner's saved state)
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "request_hash" VARCHAR',
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "prefix_hash" VARCHAR',
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "prefix_tokens" BIGINT',
        'ALTER TABLE calls ADD COLUMN IF NOT EXISTS "template_id" VARCHAR',
        "CREATE TABLE IF NOT EXISTS template_state"
        " (name VARCHAR, state VARCHAR, updated_at TIMESTAMP)",
    ],
]

#: ClickHouse (and chDB): one list of statements per version.
CLICKHOUSE: list[list[str]] = [
    [  # 1: calls, spans, content events (MergeTree)
        "CREATE TABLE IF NOT EXISTS calls (`id` String, `trace_id` String, `span_id`"
        " String, `ts` DateTime64(6, 'UTC'), `duration_ms` Float64, `source`"
        " LowCardinality(String), `producer` LowCardinality(Nullable(String)),"
        " `parent_span_id` Nullable(String), `ttft_ms` Nullable(Float64), `app`"
        " LowCardinality(Nullable(String)), `environment`"
        " LowCardinality(Nullable(String)), `provider` LowCardinality(Nullable(String)),"
        " `operation` LowCardinality(Nullable(String)), `request_model`"
        " LowCardinality(Nullable(String)), `response_model`"
        " LowCardinality(Nullable(String)), `response_id` Nullable(String), `stream`"
        " Bool, `input_tokens` Nullable(Int64), `output_tokens` Nullable(Int64),"
        " `cache_read_tokens` Nullable(Int64), `cache_write_tokens` Nullable(Int64),"
        " `reasoning_tokens` Nullable(Int64), `tokens_estimated` Bool, `cost_usd`"
        " Nullable(Float64), `cost_source` LowCardinality(String), `reported_cost_usd`"
        " Nullable(Float64), `status` LowCardinality(String), `error_class`"
        " LowCardinality(Nullable(String)), `http_status` Nullable(Int32),"
        " `error_message` Nullable(String), `finish_reasons` Array(String), `temperature`"
        " Nullable(Float64), `top_p` Nullable(Float64), `max_tokens` Nullable(Int64),"
        " `frequency_penalty` Nullable(Float64), `presence_penalty` Nullable(Float64),"
        " `seed` Nullable(Int64), `user` Nullable(String), `session` Nullable(String),"
        " `tags` Array(String), `server_address` LowCardinality(Nullable(String)),"
        " `attempts` Int32, `input_messages` Nullable(String), `output_messages`"
        " Nullable(String), `system_instructions` Nullable(String), `attributes`"
        " Nullable(String)) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY"
        " (toStartOfHour(ts), ifNull(app, ''), ifNull(request_model, ''), ts) SETTINGS"
        " index_granularity = 8192",
        "ALTER TABLE calls ADD INDEX IF NOT EXISTS idx_trace trace_id TYPE bloom_filter"
        " GRANULARITY 4",
        "ALTER TABLE calls ADD INDEX IF NOT EXISTS idx_id id TYPE bloom_filter GRANULARITY 4",
        "CREATE TABLE IF NOT EXISTS spans (`trace_id` String, `span_id` String,"
        " `parent_span_id` Nullable(String), `name` String, `kind`"
        " LowCardinality(String), `ts` DateTime64(6, 'UTC'), `duration_ms` Float64,"
        " `status` LowCardinality(String), `status_message` Nullable(String), `app`"
        " LowCardinality(Nullable(String)), `call_id` Nullable(String), `attributes`"
        " Nullable(String), `events` Nullable(String)) ENGINE = MergeTree PARTITION BY"
        " toDate(ts) ORDER BY (trace_id, ts) SETTINGS index_granularity = 8192",
        "CREATE TABLE IF NOT EXISTS content_events (`trace_id` String, `span_id` String,"
        " `ts` DateTime64(6, 'UTC'), `seq` Int32, `kind` LowCardinality(String),"
        " `message` String) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY"
        " (trace_id, span_id, ts) SETTINGS index_granularity = 8192",
    ],
    [  # 2: alert rules and their transitions
        "CREATE TABLE IF NOT EXISTS alert_rules (id String, created_at DateTime64(6,"
        " 'UTC'), source LowCardinality(String), rule String) ENGINE = MergeTree ORDER BY"
        " id",
        "CREATE TABLE IF NOT EXISTS alert_events (ts DateTime64(6, 'UTC'), rule_id"
        " String, name String, state LowCardinality(String), value Nullable(Float64),"
        " threshold Float64, detail String) ENGINE = MergeTree ORDER BY (rule_id, ts)",
    ],
    [  # 3: leases
        "CREATE TABLE IF NOT EXISTS leases (name String, holder String, expires_at"
        " DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY (name, expires_at) TTL"
        " toDateTime(expires_at) + INTERVAL 1 HOUR",
    ],
    [  # 4: ReplacingMergeTree keyed by the natural key (idempotent writes): copy and swap
        "CREATE TABLE IF NOT EXISTS calls_v4 (`id` String, `trace_id` String, `span_id`"
        " String, `ts` DateTime64(6, 'UTC'), `duration_ms` Float64, `source`"
        " LowCardinality(String), `producer` LowCardinality(Nullable(String)),"
        " `parent_span_id` Nullable(String), `ttft_ms` Nullable(Float64), `app`"
        " LowCardinality(Nullable(String)), `environment`"
        " LowCardinality(Nullable(String)), `provider` LowCardinality(Nullable(String)),"
        " `operation` LowCardinality(Nullable(String)), `request_model`"
        " LowCardinality(Nullable(String)), `response_model`"
        " LowCardinality(Nullable(String)), `response_id` Nullable(String), `stream`"
        " Bool, `input_tokens` Nullable(Int64), `output_tokens` Nullable(Int64),"
        " `cache_read_tokens` Nullable(Int64), `cache_write_tokens` Nullable(Int64),"
        " `reasoning_tokens` Nullable(Int64), `tokens_estimated` Bool, `cost_usd`"
        " Nullable(Float64), `cost_source` LowCardinality(String), `reported_cost_usd`"
        " Nullable(Float64), `status` LowCardinality(String), `error_class`"
        " LowCardinality(Nullable(String)), `http_status` Nullable(Int32),"
        " `error_message` Nullable(String), `finish_reasons` Array(String), `temperature`"
        " Nullable(Float64), `top_p` Nullable(Float64), `max_tokens` Nullable(Int64),"
        " `frequency_penalty` Nullable(Float64), `presence_penalty` Nullable(Float64),"
        " `seed` Nullable(Int64), `user` Nullable(String), `session` Nullable(String),"
        " `tags` Array(String), `server_address` LowCardinality(Nullable(String)),"
        " `attempts` Int32, `input_messages` Nullable(String), `output_messages`"
        " Nullable(String), `system_instructions` Nullable(String), `attributes`"
        " Nullable(String), `_version` UInt64 DEFAULT toUnixTimestamp64Micro(now64(6)),"
        " INDEX idx_trace trace_id TYPE bloom_filter GRANULARITY 4, INDEX idx_id id TYPE"
        " bloom_filter GRANULARITY 4) ENGINE = ReplacingMergeTree(_version) PARTITION BY"
        " toDate(ts) ORDER BY (toStartOfHour(ts), id) SETTINGS index_granularity = 8192",
        "INSERT INTO calls_v4 (`id`, `trace_id`, `span_id`, `ts`, `duration_ms`,"
        " `source`, `producer`, `parent_span_id`, `ttft_ms`, `app`, `environment`,"
        " `provider`, `operation`, `request_model`, `response_model`, `response_id`,"
        " `stream`, `input_tokens`, `output_tokens`, `cache_read_tokens`,"
        " `cache_write_tokens`, `reasoning_tokens`, `tokens_estimated`, `cost_usd`,"
        " `cost_source`, `reported_cost_usd`, `status`, `error_class`, `http_status`,"
        " `error_message`, `finish_reasons`, `temperature`, `top_p`, `max_tokens`,"
        " `frequency_penalty`, `presence_penalty`, `seed`, `user`, `session`, `tags`,"
        " `server_address`, `attempts`, `input_messages`, `output_messages`,"
        " `system_instructions`, `attributes`) SELECT `id`, `trace_id`, `span_id`, `ts`,"
        " `duration_ms`, `source`, `producer`, `parent_span_id`, `ttft_ms`, `app`,"
        " `environment`, `provider`, `operation`, `request_model`, `response_model`,"
        " `response_id`, `stream`, `input_tokens`, `output_tokens`, `cache_read_tokens`,"
        " `cache_write_tokens`, `reasoning_tokens`, `tokens_estimated`, `cost_usd`,"
        " `cost_source`, `reported_cost_usd`, `status`, `error_class`, `http_status`,"
        " `error_message`, `finish_reasons`, `temperature`, `top_p`, `max_tokens`,"
        " `frequency_penalty`, `presence_penalty`, `seed`, `user`, `session`, `tags`,"
        " `server_address`, `attempts`, `input_messages`, `output_messages`,"
        " `system_instructions`, `attributes` FROM calls",
        "RENAME TABLE calls TO calls_v3, calls_v4 TO calls",
        "DROP TABLE calls_v3",
        "CREATE TABLE IF NOT EXISTS spans_v4 (`trace_id` String, `span_id` String,"
        " `parent_span_id` Nullable(String), `name` String, `kind`"
        " LowCardinality(String), `ts` DateTime64(6, 'UTC'), `duration_ms` Float64,"
        " `status` LowCardinality(String), `status_message` Nullable(String), `app`"
        " LowCardinality(Nullable(String)), `call_id` Nullable(String), `attributes`"
        " Nullable(String), `events` Nullable(String)) ENGINE = ReplacingMergeTree"
        " PARTITION BY toDate(ts) ORDER BY (trace_id, span_id) SETTINGS index_granularity"
        " = 8192",
        "INSERT INTO spans_v4 (`trace_id`, `span_id`, `parent_span_id`, `name`, `kind`,"
        " `ts`, `duration_ms`, `status`, `status_message`, `app`, `call_id`,"
        " `attributes`, `events`) SELECT `trace_id`, `span_id`, `parent_span_id`, `name`,"
        " `kind`, `ts`, `duration_ms`, `status`, `status_message`, `app`, `call_id`,"
        " `attributes`, `events` FROM spans",
        "RENAME TABLE spans TO spans_v3, spans_v4 TO spans",
        "DROP TABLE spans_v3",
        "CREATE TABLE IF NOT EXISTS content_events_v4 (`trace_id` String, `span_id`"
        " String, `ts` DateTime64(6, 'UTC'), `seq` Int32, `kind` LowCardinality(String),"
        " `message` String) ENGINE = ReplacingMergeTree PARTITION BY toDate(ts) ORDER BY"
        " (trace_id, span_id, ts, seq, kind) SETTINGS index_granularity = 8192",
        "INSERT INTO content_events_v4 (`trace_id`, `span_id`, `ts`, `seq`, `kind`,"
        " `message`) SELECT `trace_id`, `span_id`, `ts`, `seq`, `kind`, `message` FROM"
        " content_events",
        "RENAME TABLE content_events TO content_events_v3, content_events_v4 TO content_events",
        "DROP TABLE content_events_v3",
    ],
    [  # 5: the provider's request id (two reports of one failed call are one call)
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `upstream_request_id` Nullable(String)"
        " AFTER `attributes`",
    ],
    [  # 6 (#20): scores about calls, traces and sessions
        "CREATE TABLE IF NOT EXISTS scores (`id` String, `ts` DateTime64(6, 'UTC'), `target`"
        " LowCardinality(String), `target_id` String, `name` LowCardinality(String), `value`"
        " Nullable(Float64), `label` LowCardinality(Nullable(String)), `comment`"
        " Nullable(String), `source` LowCardinality(String), `author` Nullable(String), `app`"
        " LowCardinality(Nullable(String)), `trace_id` Nullable(String), `_version` UInt64"
        " DEFAULT toUnixTimestamp64Micro(now64(6)), INDEX idx_target target_id TYPE"
        " bloom_filter GRANULARITY 4) ENGINE = ReplacingMergeTree(_version) PARTITION BY"
        " toDate(ts) ORDER BY (id) SETTINGS index_granularity = 8192",
    ],
    [  # 7 (#14): Azure OpenAI's deployment and api-version
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `deployment`"
        " LowCardinality(Nullable(String)) AFTER `upstream_request_id`",
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `api_version`"
        " LowCardinality(Nullable(String)) AFTER `deployment`",
    ],
    [  # 8 (#19): cache opportunities (request/prefix hashes, prefix tokens), prompt
        # templates (each call's template, the miner's saved state)
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `request_hash` Nullable(String)"
        " AFTER `api_version`",
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `prefix_hash` Nullable(String)"
        " AFTER `request_hash`",
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `prefix_tokens` Nullable(Int64)"
        " AFTER `prefix_hash`",
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS `template_id`"
        " LowCardinality(Nullable(String)) AFTER `prefix_tokens`",
        "CREATE TABLE IF NOT EXISTS template_state (name String, state String,"
        " updated_at DateTime64(6, 'UTC')) ENGINE = ReplacingMergeTree(updated_at) ORDER BY name",
    ],
]
