import { ActionIcon, Anchor, Badge, Group, Image, Progress, Stack, Table, Text, Title, Tooltip } from "@mantine/core";
import { Dropzone } from "@mantine/dropzone";
import { IconFile, IconLock, IconPaperclip, IconTrash } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type ClipboardEvent } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { type Attachment, fetchFile, fileSize, isPreviewable, saveFile, uploadFiles } from "../api/files";
import { atLeast, useSession } from "../auth/useSession";
import { notifyError } from "../ui/forms";
import { Failed, Loading } from "../ui/states";
import { dateTime } from "../ui/time";

/** The ticket's files, shared by the file list and the comments that carry some of them. */
export function useAttachments(ticketId: string) {
  return useQuery({
    queryKey: ["attachments", ticketId],
    queryFn: () =>
      call(api.GET("/api/v1/tickets/{id}/attachments", { params: { path: { id: ticketId } } })).then(
        (list) => list.items,
      ),
  });
}

/**
 * Uploads to one ticket with a progress share (null when idle). Each batch of files is one
 * request with its own Idempotency-Key; what it stored refreshes the ticket's files.
 */
export function useUploader(ticketId: string) {
  const client = useQueryClient();
  const [progress, setProgress] = useState<number | null>(null);
  async function upload(files: File[], internal = false): Promise<Attachment[]> {
    if (files.length === 0) return [];
    setProgress(0);
    try {
      const stored = await uploadFiles(ticketId, files, {
        internal,
        idempotencyKey: idempotencyKey(),
        onProgress: setProgress,
      });
      void client.invalidateQueries({ queryKey: ["attachments", ticketId] });
      void client.invalidateQueries({ queryKey: ["timeline", ticketId] });
      return stored;
    } catch (err) {
      notifyError(err, files.length === 1 ? `Could not upload ${files[0]?.name ?? "the file"}` : "Could not upload the files");
      return [];
    } finally {
      setProgress(null);
    }
  }
  return { upload, progress };
}

/** Files pasted into a field (a screenshot from the clipboard, say). */
export function pastedFiles(e: ClipboardEvent): File[] {
  return Array.from(e.clipboardData?.files ?? []);
}

export function UploadProgress({ progress }: { progress: number | null }) {
  if (progress === null) return null;
  const percent = Math.round(progress * 100);
  return (
    <Progress value={percent} animated aria-label={`Uploading: ${percent}%`} role="progressbar" aria-valuenow={percent} />
  );
}

/** The Files section of a ticket page: drop, paste or pick files; see, download and remove them. */
export function TicketFiles({ ticketId }: { ticketId: string }) {
  const role = useSession()?.role;
  const mayUpload = role === "requester" || atLeast(role, "agent");
  const files = useAttachments(ticketId);
  const { upload, progress } = useUploader(ticketId);
  // Files of comments are shown with their comment; the rest belong to the ticket itself.
  const own = (files.data ?? []).filter((a) => !a.comment_id);

  return (
    <Stack component="section" aria-labelledby="files" gap="xs" onPaste={(e) => void upload(pastedFiles(e))}>
      <Title order={2} size="h4" id="files">
        Files
      </Title>
      {files.isPending ? (
        <Loading label="Loading files" />
      ) : files.isError ? (
        <Failed error={files.error} onRetry={() => void files.refetch()} />
      ) : own.length === 0 ? (
        <Text size="sm" c="dimmed">
          No files yet.
        </Text>
      ) : (
        <FileTable items={own} />
      )}
      {mayUpload && (
        <Dropzone
          onDrop={(dropped) => void upload(dropped)}
          loading={progress !== null}
          multiple
          p="md"
          aria-label="Add files: drop them here, paste them, or choose them"
          inputProps={{ "aria-label": "Choose files to add to the ticket" }}
        >
          <Group justify="center" gap="xs" mih={48} style={{ pointerEvents: "none" }}>
            <IconPaperclip size={18} aria-hidden />
            <Text size="sm">Drop files here, paste a screenshot, or click to choose</Text>
          </Group>
        </Dropzone>
      )}
      <UploadProgress progress={progress} />
    </Stack>
  );
}

/** Name (a download), size, type, when, and a remove button for whoever may remove it. */
export function FileTable({ items }: { items: Attachment[] }) {
  return (
    <Table verticalSpacing={4} aria-label="Files">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Name</Table.Th>
          <Table.Th>Size</Table.Th>
          <Table.Th>Type</Table.Th>
          <Table.Th>Added</Table.Th>
          <Table.Th>
            <span className="sr-only">Actions</span>
          </Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {items.map((a) => (
          <FileRow key={a.id} file={a} />
        ))}
      </Table.Tbody>
    </Table>
  );
}

function FileRow({ file: a }: { file: Attachment }) {
  const session = useSession();
  const client = useQueryClient();
  const mayRemove = a.uploaded_by === session?.user.id || atLeast(session?.role, "agent");
  const [removing, setRemoving] = useState(false);

  async function remove() {
    setRemoving(true);
    try {
      await call(api.DELETE("/api/v1/attachments/{id}", { params: { path: { id: a.id } } }));
      void client.invalidateQueries({ queryKey: ["attachments", a.ticket_id] });
      void client.invalidateQueries({ queryKey: ["timeline", a.ticket_id] });
    } catch (err) {
      notifyError(err, `Could not remove ${a.filename}`);
    } finally {
      setRemoving(false);
    }
  }

  return (
    <Table.Tr>
      <Table.Td>
        <Group gap="xs" wrap="nowrap">
          {isPreviewable(a) ? <Preview file={a} /> : <IconFile size={20} aria-hidden />}
          <FileLink file={a} />
          {a.internal && (
            <Badge size="xs" color="yellow" leftSection={<IconLock size={10} aria-hidden />}>
              Staff only
            </Badge>
          )}
        </Group>
      </Table.Td>
      <Table.Td>{fileSize(a.size)}</Table.Td>
      <Table.Td>
        <Text size="xs" ff="monospace">
          {a.content_type.split(";")[0]}
        </Text>
      </Table.Td>
      <Table.Td>
        <Text size="xs">{dateTime(a.created_at)}</Text>
      </Table.Td>
      <Table.Td>
        {mayRemove && (
          <Tooltip label={`Remove ${a.filename}`}>
            <ActionIcon
              variant="subtle"
              color="red"
              onClick={() => void remove()}
              loading={removing}
              aria-label={`Remove ${a.filename}`}
            >
              <IconTrash size={16} />
            </ActionIcon>
          </Tooltip>
        )}
      </Table.Td>
    </Table.Tr>
  );
}

/** The file's name; clicking it downloads the file. */
export function FileLink({ file: a }: { file: Attachment }) {
  return (
    <Anchor
      component="button"
      type="button"
      size="sm"
      onClick={() => void saveFile(a).catch((err: unknown) => notifyError(err, `Could not download ${a.filename}`))}
    >
      {a.filename}
    </Anchor>
  );
}

/** A small preview of an image, fetched with the session's token. */
function Preview({ file: a }: { file: Attachment }) {
  const blob = useQuery({ queryKey: ["file", a.id], queryFn: () => fetchFile(a.id), staleTime: Infinity });
  const url = useMemo(() => (blob.data ? URL.createObjectURL(blob.data) : null), [blob.data]);
  useEffect(() => () => {
    if (url) URL.revokeObjectURL(url);
  }, [url]);
  if (!url) return <IconFile size={20} aria-hidden />;
  return <Image src={url} alt={`Preview of ${a.filename}`} w={40} h={40} fit="cover" radius="sm" />;
}

/** The files a comment carries, under its text. */
export function CommentFiles({ items }: { items: Attachment[] }) {
  if (items.length === 0) return null;
  return (
    <Group gap="xs" aria-label="Attached files">
      <IconPaperclip size={14} aria-hidden />
      {items.map((a) => (
        <Group key={a.id} gap={4} wrap="nowrap">
          {isPreviewable(a) && <Preview file={a} />}
          <FileLink file={a} />
          <Text size="xs" c="dimmed">
            {fileSize(a.size)}
          </Text>
        </Group>
      ))}
    </Group>
  );
}
