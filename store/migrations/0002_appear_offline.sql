-- appear_offline keeps a user's choice to appear offline while WebSocket
-- sessions are open (messages.UserState.appear_offline), so that it
-- survives ownership moves and restarts.
ALTER TABLE presence_users ADD COLUMN appear_offline boolean NOT NULL DEFAULT false;
