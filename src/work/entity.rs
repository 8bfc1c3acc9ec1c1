//! Tables owned by work. Private to this module: other modules go through its services.

pub mod project {
    crate::store::tenant_entity!("projects" walled_by Id {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        key: String,
        name: String,
        description: Option<String>,
        ticket_counter: i64,
        archived_at: Option<DateTimeUtc>,
        created_by: Option<Uuid>,
        created_at: DateTimeUtc,
        updated_at: DateTimeUtc,
        status: String,
        start_date: Option<Date>,
        target_date: Option<Date>,
        lead_id: Option<Uuid>,
        visibility: String,
    });
}

pub mod project_member {
    crate::store::tenant_entity!("project_members" {
        #[sea_orm(primary_key, auto_increment = false)]
        project_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
        role: String,
        created_at: DateTimeUtc,
    });
}

pub mod ticket {
    crate::store::tenant_entity!("tickets" walled_by ProjectId {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        project_id: Uuid,
        number: i64,
        title: String,
        description: Option<String>,
        status: String,
        priority: i16,
        requester_id: Option<Uuid>,
        due_at: Option<DateTimeUtc>,
        first_response_due_at: Option<DateTimeUtc>,
        resolution_due_at: Option<DateTimeUtc>,
        version: i64,
        created_by: Option<Uuid>,
        created_at: DateTimeUtc,
        updated_at: DateTimeUtc,
        resolved_at: Option<DateTimeUtc>,
        closed_at: Option<DateTimeUtc>,
        deleted_at: Option<DateTimeUtc>,
        parent_id: Option<Uuid>,
        merged_into_id: Option<Uuid>,
        subtasks_total: i64,
        subtasks_done: i64,
    });
}

pub mod link {
    crate::store::tenant_entity!("ticket_links" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        kind: String,
        source_id: Uuid,
        target_id: Uuid,
        created_by: Option<Uuid>,
        created_at: DateTimeUtc,
    });
}

pub mod merge {
    crate::store::tenant_entity!("ticket_merges" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        source_id: Uuid,
        target_id: Uuid,
        target_version: i64,
        moved: Json,
        merged_by: Option<Uuid>,
        merged_at: DateTimeUtc,
        undone_at: Option<DateTimeUtc>,
    });
}

pub mod assignee {
    crate::store::tenant_entity!("ticket_assignees" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
    });
}

pub mod label {
    crate::store::tenant_entity!("ticket_labels" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        label: String,
    });
}

pub mod comment {
    crate::store::tenant_entity!("comments" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        ticket_id: Uuid,
        author_id: Uuid,
        #[sea_orm(column_type = "Text")]
        body: String,
        internal: bool,
        version: i64,
        created_at: DateTimeUtc,
        updated_at: DateTimeUtc,
    });
}

pub mod event {
    crate::store::tenant_entity!("ticket_events" walled_by ProjectId {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        project_id: Uuid,
        ticket_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        kind: String,
        internal: bool,
        version: Option<i64>,
        changes: Json,
        created_at: DateTimeUtc,
        /// When retention replaced text in `changes` with a notice (the only update an entry
        /// takes).
        redacted_at: Option<DateTimeUtc>,
    });
}

pub mod watcher {
    crate::store::tenant_entity!("ticket_watchers" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
        created_at: DateTimeUtc,
    });
}

pub mod saved_view {
    crate::store::tenant_entity!("saved_views" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        user_id: Uuid,
        name: String,
        query: String,
        created_at: DateTimeUtc,
        updated_at: DateTimeUtc,
    });
}

pub mod attachment {
    crate::store::tenant_entity!("attachments" {
        #[sea_orm(primary_key, auto_increment = false)]
        id: Uuid,
        ticket_id: Uuid,
        comment_id: Option<Uuid>,
        filename: String,
        content_type: String,
        size: i64,
        sha256: String,
        uploaded_by: Uuid,
        internal: bool,
        created_at: DateTimeUtc,
    });
}
