import { Alert, Button, Group, Modal, Stack, type ModalProps } from "@mantine/core";
import type { FormEventHandler, ReactNode } from "react";
import { UpgradeLink } from "../billing/UpgradeLink";

/**
 * A dialog holding one form: its fields, a form-level error (with the way to a bigger plan when
 * one of its limits stopped the form: `limited`), Cancel and the submit button.
 */
export function FormModal({
  opened,
  onClose,
  title,
  size,
  error,
  limited = false,
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
  limited?: boolean;
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
              {limited && <UpgradeLink />}
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
