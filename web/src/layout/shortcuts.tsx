import { Kbd, Modal, Table } from "@mantine/core";
import { useDisclosure, useHotkeys } from "@mantine/hooks";

export const SHORTCUTS: [string, string][] = [
  ["j / k", "Next / previous ticket in a list"],
  ["Enter", "Open the selected ticket"],
  ["c", "Create a ticket"],
  ["/", "Search and filter tickets"],
  ["?", "Show this help"],
  ["Esc", "Close a dialog"],
];

/** `?` opens the shortcut help anywhere (but not while typing). */
export function useGlobalShortcuts() {
  const [opened, { open, close }] = useDisclosure(false);
  useHotkeys([["shift+?", open]]);
  return { opened, open, close };
}

export function ShortcutsHelp({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  return (
    <Modal opened={opened} onClose={onClose} title="Keyboard shortcuts">
      <Table>
        <Table.Tbody>
          {SHORTCUTS.map(([keys, what]) => (
            <Table.Tr key={keys}>
              <Table.Td>
                <Kbd>{keys}</Kbd>
              </Table.Td>
              <Table.Td>{what}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Modal>
  );
}
