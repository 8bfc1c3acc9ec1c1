-- GET /tickets?status=open&limit=50 (the list in work/tickets.rs): the page, then its assignees, labels
-- and project keys. {page_ids} is the page the API returned for the same caller and filter.
BEGIN;
SELECT set_config('app.org_id', '{org}', true);
SELECT "tickets"."org_id", "tickets"."id", "tickets"."project_id", "tickets"."number", "tickets"."title", "tickets"."description", "tickets"."status", "tickets"."priority", "tickets"."requester_id", "tickets"."due_at", "tickets"."first_response_due_at", "tickets"."resolution_due_at", "tickets"."version", "tickets"."created_by", "tickets"."created_at", "tickets"."updated_at", "tickets"."resolved_at", "tickets"."closed_at", "tickets"."deleted_at" FROM "tickets" WHERE "tickets"."org_id" = '{org}' AND "tickets"."deleted_at" IS NULL AND "tickets"."status" IN ('open') ORDER BY "tickets"."created_at" DESC, "tickets"."id" DESC LIMIT 51;
SELECT "ticket_assignees"."org_id", "ticket_assignees"."ticket_id", "ticket_assignees"."user_id" FROM "ticket_assignees" WHERE "ticket_assignees"."org_id" = '{org}' AND "ticket_assignees"."ticket_id" IN ({page_ids}) ORDER BY "ticket_assignees"."user_id" ASC;
SELECT "ticket_labels"."org_id", "ticket_labels"."ticket_id", "ticket_labels"."label" FROM "ticket_labels" WHERE "ticket_labels"."org_id" = '{org}' AND "ticket_labels"."ticket_id" IN ({page_ids}) ORDER BY "ticket_labels"."label" ASC;
SELECT "projects"."org_id", "projects"."id", "projects"."key", "projects"."name", "projects"."description", "projects"."ticket_counter", "projects"."archived_at", "projects"."created_by", "projects"."created_at", "projects"."updated_at" FROM "projects" WHERE "projects"."org_id" = '{org}' AND "projects"."id" IN ({page_projects});
COMMIT;
