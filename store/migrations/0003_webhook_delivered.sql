-- The change feed's ledger (webhook package): per receiver URL and user, the
-- highest version that receiver accepted. A node that activates a user whose
-- stored version is above it delivers that state again (the previous owner
-- crashed between answering the write and delivering it). Additive: no
-- other table changes.
CREATE TABLE presence_webhook_delivered (
    receiver text   NOT NULL,
    user_id  bigint NOT NULL,
    version  bigint NOT NULL,
    PRIMARY KEY (receiver, user_id)
);
