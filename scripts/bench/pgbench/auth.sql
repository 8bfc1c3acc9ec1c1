-- What the server runs to authenticate every request (identity authenticate).
BEGIN;
SELECT set_config('app.org_id', '{org}', true);
SELECT "sessions"."org_id", "sessions"."id", "sessions"."user_id", "sessions"."created_at", "sessions"."expires_at", "sessions"."revoked_at", "sessions"."revoked_reason" FROM "sessions" WHERE "sessions"."org_id" = '{org}' AND "sessions"."id" = '{session}' AND "sessions"."revoked_at" IS NULL AND "sessions"."expires_at" > now() LIMIT 1;
SELECT "memberships"."org_id", "memberships"."user_id", "memberships"."role", "memberships"."active", "memberships"."created_at", "memberships"."updated_at" FROM "memberships" WHERE "memberships"."org_id" = '{org}' AND "memberships"."user_id" = '{user}' AND "memberships"."active" = true LIMIT 1;
COMMIT;
