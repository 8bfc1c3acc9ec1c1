import { Alert, Button, Group, Modal, Stack, Table, Text } from "@mantine/core";
import { FIELD_LABELS } from "./model";
import { changedFields, type Conflict } from "./useTicketUpdate";

function show(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
  return String(value);
}

/** Shows what someone else changed while this person was editing, and lets them choose. */
export function ConflictDialog({
  conflict,
  onReapply,
  onDiscard,
}: {
  conflict: Conflict | null;
  onReapply: () => void;
  onDiscard: () => void;
}) {
  if (!conflict) return null;
  const theirs = changedFields(conflict.base, conflict.current);
  const mine = Object.keys(conflict.patch) as (keyof typeof conflict.patch)[];
  return (
    <Modal opened onClose={onDiscard} title="Someone else changed this ticket" size="lg">
      <Stack>
        <Alert color="yellow" role="alert">
          This ticket changed after you started editing (it is now at version {conflict.current.version}). Nothing was
          overwritten. Review the changes, then apply yours again or keep theirs.
        </Alert>
        <Table aria-label="Changes">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Field</Table.Th>
              <Table.Th>When you started</Table.Th>
              <Table.Th>Now</Table.Th>
              <Table.Th>Your change</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {[...new Set([...theirs, ...mine])].map((field) => (
              <Table.Tr key={field}>
                <Table.Td>{FIELD_LABELS[field] ?? field}</Table.Td>
                <Table.Td>{show(conflict.base[field as keyof typeof conflict.base])}</Table.Td>
                <Table.Td>
                  <Text fw={theirs.includes(field) ? 700 : 400} size="sm">
                    {show(conflict.current[field as keyof typeof conflict.current])}
                  </Text>
                </Table.Td>
                <Table.Td>{field in conflict.patch ? show(conflict.patch[field as keyof typeof conflict.patch]) : "—"}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
        <Group justify="flex-end">
          <Button variant="default" onClick={onDiscard}>
            Keep their version
          </Button>
          <Button onClick={onReapply}>Apply my change again</Button>
        </Group>
      </Stack>
    </Modal>
  );
}
