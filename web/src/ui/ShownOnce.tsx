import { Alert, Button, Code, CopyButton, Group } from "@mantine/core";
import type { ReactNode } from "react";

/** A credential the server shows only once (an API token, a webhook secret): copy it, then done. */
export function ShownOnce({
  title,
  value,
  testId,
  onDone,
  children,
}: {
  title: string;
  value: string;
  testId: string;
  onDone: () => void;
  children?: ReactNode;
}) {
  return (
    <Alert color="green" title={title} role="status">
      {children}
      <Code block data-testid={testId} style={{ wordBreak: "break-all", whiteSpace: "pre-wrap" }}>
        {value}
      </Code>
      <Group gap="xs" mt="xs">
        <CopyButton value={value}>
          {({ copied, copy }) => (
            <Button size="xs" variant="light" onClick={copy}>
              {copied ? "Copied" : "Copy"}
            </Button>
          )}
        </CopyButton>
        <Button size="xs" variant="subtle" onClick={onDone}>
          Done
        </Button>
      </Group>
    </Alert>
  );
}
