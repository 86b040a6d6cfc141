-- Apps' own data (the kv capability), what each app uses of its quotas, and the operator's
-- per-app settings: the capability policy and env values. Every row belongs to an app and
-- goes with it (ON DELETE CASCADE): removing an app removes its data in the same transaction,
-- so an app later deployed under the same name starts empty.

-- kv: one row per key. `scope` is '' for the app's own keys and 'u:<user id>' for kv.user,
-- so no key, however crafted, reaches another scope. `value` is JSON text. Times are unix ms.
CREATE TABLE app_kv (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at INTEGER,                    -- NULL: never expires
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app, scope, key)
) WITHOUT ROWID;
CREATE INDEX app_kv_expiry ON app_kv(expires_at) WHERE expires_at IS NOT NULL;

-- Bytes each app stores per capability, kept in the same transaction as the data it counts,
-- so a quota check is one row read.
CREATE TABLE app_usage (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    capability TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (app, capability)
) WITHOUT ROWID;

-- The operator's policy (`fazt app policy`): a capability withheld, or its quota lowered.
CREATE TABLE app_policy (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    capability TEXT NOT NULL,
    withheld INTEGER NOT NULL DEFAULT 0,
    quota_mb INTEGER,                      -- NULL: what the manifest and the server allow
    PRIMARY KEY (app, capability)
) WITHOUT ROWID;

-- Operator-set, non-secret settings (`fazt app env`); a handler sees the names its manifest
-- lists under "env".
CREATE TABLE app_env (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app, name)
) WITHOUT ROWID;
