-- The built-in authorization server's state (src/authz/store.rs). Portable SQL: the same file
-- runs on SQLite and PostgreSQL. Times are Unix seconds; secrets are stored as SHA-256 hashes
-- (codes, refresh tokens, login sessions, client secrets), never in the clear.

-- Registered clients (RFC 7591) and fetched client ID metadata documents.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT,
    auth_method TEXT NOT NULL,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT
);

-- Authorization requests between /oauth/authorize and the code (login, consent).
CREATE TABLE oauth_requests (
    id TEXT PRIMARY KEY,
    params TEXT NOT NULL,
    csrf TEXT NOT NULL,
    upstream TEXT,
    expires BIGINT NOT NULL
);

-- Browser login sessions (cookie value hashed).
CREATE TABLE oauth_sessions (
    id_hash TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    roles TEXT NOT NULL,
    method TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);

-- Authorization codes: single use; `used` set on redemption (a replay revokes the family).
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    roles TEXT NOT NULL,
    method TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BIGINT
);

-- A grant's refresh-token family: every token rotated from one code.
CREATE TABLE oauth_families (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    roles TEXT NOT NULL,
    method TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT NOT NULL,
    revoked BIGINT,
    revoked_reason TEXT
);
CREATE INDEX oauth_families_subject ON oauth_families (subject, client_id);

CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used BIGINT
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family);

-- Consent remembered per user, client and resource.
CREATE TABLE oauth_consents (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (subject, client_id, resource)
);

-- Signing keys (ES256, PKCS#8 base64); `retired` once a newer key signs.
CREATE TABLE oauth_keys (
    kid TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created BIGINT NOT NULL,
    retired BIGINT
);

-- Users disabled by the operator (`mcp-relay oauth users disable`), local or upstream.
CREATE TABLE oauth_disabled_users (
    subject TEXT PRIMARY KEY,
    disabled BIGINT NOT NULL
);
