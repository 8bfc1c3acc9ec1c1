// A small confirmation dialog for destructive actions, shown through a module-level store so
// any handler can ask without threading state through the page.

import { Button, Group, Modal, Stack, Text } from "@mantine/core";
import { useSyncExternalStore } from "react";

interface Ask {
  title: string;
  body: string;
  confirm: string;
  onConfirm: () => void;
}

let pending: Ask | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((l) => l());

function Host() {
  const ask = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => pending,
  );
  const close = () => {
    pending = null;
    emit();
  };
  return (
    <Modal opened={ask !== null} onClose={close} title={ask?.title}>
      <Stack>
        <Text size="sm">{ask?.body}</Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={close}>
            Cancel
          </Button>
          <Button
            color="red"
            onClick={() => {
              ask?.onConfirm();
              close();
            }}
          >
            {ask?.confirm}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

export const modals = {
  confirm(ask: Ask) {
    pending = ask;
    emit();
  },
  Host,
};
