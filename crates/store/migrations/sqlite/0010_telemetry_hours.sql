-- medgate schema v10: the telemetry series also summed per hour (`hour`: Unix seconds at its
-- start), so that a chart over days reads hours instead of every minute. Written with the
-- minutes; an hour goes once all of it is past the retention.
CREATE TABLE telemetry_hours (
    hour      INTEGER NOT NULL,
    series    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    platform  TEXT NOT NULL,
    count     INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (hour, series, outcome, reason, platform)
) WITHOUT ROWID;
INSERT INTO telemetry_hours (hour, series, outcome, reason, platform, count)
    SELECT minute - minute % 3600, series, outcome, reason, platform, SUM(count)
    FROM telemetry GROUP BY minute - minute % 3600, series, outcome, reason, platform;
