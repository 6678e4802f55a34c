-- medgate schema v9: the telemetry series, attestation decisions and gateway outcomes counted
-- per minute (`minute`: Unix seconds at its start) so that charts read counts instead of
-- scanning the audit log. Every column comes from a fixed set (series, decision or refusal
-- kind, reason code, platform; '' for none): no patient data, no text a client sent. Rows are
-- pruned after the node's retention.
CREATE TABLE telemetry (
    minute    INTEGER NOT NULL,
    series    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    platform  TEXT NOT NULL,
    count     INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, series, outcome, reason, platform)
) WITHOUT ROWID;
