-- name: claim_signal_events
INSERT INTO signal_event (event_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING
RETURNING event_id::text;

-- name: add_tallies
INSERT INTO signal_tally AS t (signal, org_id, community_id, subject, window_start, window_seconds,
                               count, points)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int[],
                     $7::int[], $8::bigint[])
ON CONFLICT (signal, org_id, subject, window_start)
DO UPDATE SET count = t.count + excluded.count, points = t.points + excluded.points;

-- name: recent_tallies
SELECT signal, org_id, community_id, subject, window_start, window_seconds, count, points
FROM signal_tally
WHERE ($1::text IS NULL OR org_id = $1) AND window_start >= $2
ORDER BY signal, org_id, subject, window_start;

-- name: officer_pairs_since
SELECT signal, org_id, community_id, subject, window_start, window_seconds, count, points
FROM signal_tally
WHERE signal = 'officer_volunteer_completions_per_day' AND ($1::text IS NULL OR org_id = $1)
  AND window_start >= $2;
