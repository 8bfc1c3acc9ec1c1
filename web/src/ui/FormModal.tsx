import { Alert, Button, Group, Modal, Stack, type ModalProps } from "@mantine/core";
import type { FormEventHandler, ReactNode } from "react";

/** A dialog holding one form: its fields, a form-level error, Cancel and the submit button. */
export function FormModal({
  opened,
  onClose,
  title,
  size,
  error,
  onSubmit,
  submitLabel,
  submitting,
  children,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  size?: ModalProps["size"];
  error: string | null;
  onSubmit: FormEventHandler<HTMLFormElement>;
  submitLabel: string;
  submitting: boolean;
  children: ReactNode;
}) {
  return (
    <Modal opened={opened} onClose={onClose} title={title} size={size}>
      <form onSubmit={onSubmit} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          {children}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={submitting}>
              {submitLabel}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
