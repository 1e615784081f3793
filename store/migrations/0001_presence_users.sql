-- One row per user: the presence record the user actors own (messages.UserState).
-- Times are Unix microseconds in UTC as in the protobuf message, 0 meaning
-- "none"; bigint keeps them exact, with no conversion on the way in or out.
-- version is the compare-and-set fence; a uint64 is stored bit for bit as a
-- bigint, and the store only ever compares it for equality.
CREATE TABLE presence_users (
    user_id       bigint  PRIMARY KEY,
    username      text    NOT NULL,
    is_online     boolean NOT NULL DEFAULT false,
    is_busy       boolean NOT NULL DEFAULT false,
    busy_until    bigint  NOT NULL DEFAULT 0,
    last_seen     bigint  NOT NULL DEFAULT 0,
    created_at    bigint  NOT NULL DEFAULT 0,
    updated_at    bigint  NOT NULL DEFAULT 0,
    version       bigint  NOT NULL,
    sessions_held boolean NOT NULL DEFAULT false
) WITH (
    -- last_seen touches are the bulk of the writes and change no indexed
    -- column; free space on each page lets them be HOT updates.
    fillfactor = 90
);

-- ScanLive reads the users whose timers must run somewhere, in user_id
-- order, page by page; offline users, the vast majority, are not indexed.
CREATE INDEX presence_users_live ON presence_users (user_id) WHERE is_online OR is_busy;
