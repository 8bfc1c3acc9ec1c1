//! Search: one document per ticket (title and description) and per comment, written in the
//! same transaction as the text. PostgreSQL indexes a weighted `tsvector` with GIN; SQLite keeps
//! an FTS5 index over the documents, maintained by triggers. Existing text is indexed here.

use sea_orm_migration::{prelude::*, schema::*};

use super::{TENANT_POLICY, index, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum SearchDocuments {
    Table,
    /// SQLite's FTS5 index refers to documents by this integer key.
    Seq,
    OrgId,
    DocId,
    TicketId,
    Internal,
    Title,
    Body,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    OrgId,
    Id,
}

const SQLITE_FTS: &str = "
CREATE VIRTUAL TABLE search_fts USING fts5(
    title, body, content='search_documents', content_rowid='seq',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN
    INSERT INTO search_fts(rowid, title, body) VALUES (new.seq, new.title, new.body);
END;
CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN
    INSERT INTO search_fts(search_fts, rowid, title, body)
        VALUES ('delete', old.seq, old.title, old.body);
END;
CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN
    INSERT INTO search_fts(search_fts, rowid, title, body)
        VALUES ('delete', old.seq, old.title, old.body);
    INSERT INTO search_fts(rowid, title, body) VALUES (new.seq, new.title, new.body);
END;";

/// PostgreSQL's text parser reads `<…>` as markup and drops what a `<script>` encloses: angle
/// brackets are read as spaces, so text that looks like HTML is still found.
const POSTGRES_TSV: &str = "
ALTER TABLE search_documents ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', translate(title, '<>', '  ')), 'A')
    || setweight(to_tsvector('english', translate(body, '<>', '  ')), 'B')
) STORED;
CREATE INDEX idx_search_documents_tsv ON search_documents USING GIN (tsv);";

const BACKFILL: &str = "
INSERT INTO search_documents (org_id, doc_id, ticket_id, internal, title, body)
    SELECT org_id, id, id, false, title, COALESCE(description, '') FROM tickets;
INSERT INTO search_documents (org_id, doc_id, ticket_id, internal, title, body)
    SELECT org_id, id, ticket_id, internal, '', body FROM comments;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SearchDocuments::Table)
                    .col(pk_auto(SearchDocuments::Seq))
                    .col(uuid(SearchDocuments::OrgId))
                    // The ticket's id for its own document, the comment's for a comment.
                    .col(uuid(SearchDocuments::DocId))
                    .col(uuid(SearchDocuments::TicketId))
                    .col(boolean(SearchDocuments::Internal))
                    .col(text(SearchDocuments::Title))
                    .col(text(SearchDocuments::Body))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                SearchDocuments::Table,
                                (SearchDocuments::OrgId, SearchDocuments::TicketId),
                            )
                            .to(Tickets::Table, (Tickets::OrgId, Tickets::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let mut doc = index(
            "idx_search_documents_doc",
            SearchDocuments::Table,
            &[SearchDocuments::OrgId, SearchDocuments::DocId],
        );
        manager.create_index(doc.unique().to_owned()).await?;
        manager
            .create_index(index(
                "idx_search_documents_ticket",
                SearchDocuments::Table,
                &[SearchDocuments::OrgId, SearchDocuments::TicketId],
            ))
            .await?;
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                conn.execute_unprepared(POSTGRES_TSV).await?;
                // The owner reads every tenant's text only while the walls are not forced on
                // it, and writes the documents before their own wall goes up.
                conn.execute_unprepared(
                    "ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY; \
                     ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;",
                )
                .await?;
                conn.execute_unprepared(BACKFILL).await?;
                conn.execute_unprepared(
                    "ALTER TABLE tickets FORCE ROW LEVEL SECURITY; \
                     ALTER TABLE comments FORCE ROW LEVEL SECURITY;",
                )
                .await?;
                tenant_rls(manager, "search_documents", TENANT_POLICY, None).await?;
            }
            _ => {
                conn.execute_unprepared(SQLITE_FTS).await?;
                conn.execute_unprepared(BACKFILL).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE search_fts")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(SearchDocuments::Table).to_owned())
            .await
    }
}
