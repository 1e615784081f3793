-- Per-viewer visibility (messages.UserState.visibility): who may see the
-- user's presence and last_seen. Modes are the VisibilityMode numbers
-- (0 everyone, 1 nobody, 2 allowlist); visibility_allow is the sorted
-- allowlist. The defaults are the default setting: everyone sees
-- everything.
ALTER TABLE presence_users
	ADD COLUMN visibility_presence smallint NOT NULL DEFAULT 0,
	ADD COLUMN visibility_last_seen smallint NOT NULL DEFAULT 0,
	ADD COLUMN visibility_allow bigint[] NOT NULL DEFAULT '{}';
