//! Tables owned by work. Private to this module: other modules go through its services.

macro_rules! tenant_entity {
    ($table:literal { $($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = $table)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub org_id: Uuid,
            $($(#[$attr])* pub $field: $ty),*
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}

        impl crate::store::TenantEntity for Entity {
            fn org_column() -> Column {
                Column::OrgId
            }
        }
    };
}

pub mod project {
    tenant_entity!("projects" {
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
    });
}

pub mod ticket {
    tenant_entity!("tickets" {
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
    });
}

pub mod assignee {
    tenant_entity!("ticket_assignees" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
    });
}

pub mod label {
    tenant_entity!("ticket_labels" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        label: String,
    });
}

pub mod comment {
    tenant_entity!("comments" {
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
    tenant_entity!("ticket_events" {
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
    });
}

pub mod watcher {
    tenant_entity!("ticket_watchers" {
        #[sea_orm(primary_key, auto_increment = false)]
        ticket_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        user_id: Uuid,
        created_at: DateTimeUtc,
    });
}
