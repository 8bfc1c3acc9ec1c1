// Loading, empty and error states, the same on every page.

import { Alert, Button, Center, Loader, Stack, Text, Title } from "@mantine/core";
import { IconAlertTriangle, IconInbox } from "@tabler/icons-react";
import type { UseInfiniteQueryResult } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useRouteError } from "react-router";
import { errorMessage } from "../api/problem";

export function Loading({ label = "Loading" }: { label?: string }) {
  return (
    <Center py="xl" role="status" aria-live="polite">
      <Loader size="sm" aria-hidden />
      <Text ml="sm" c="dimmed">
        {label}…
      </Text>
    </Center>
  );
}

/** Nothing to show: what it is, what to do next, and (`action`) the button that does it. */
export function Empty({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <Stack align="center" py="xl" gap="xs">
      <IconInbox size={32} aria-hidden color="var(--mantine-color-gray-5)" />
      <Text fw={500}>{title}</Text>
      {children && <Text c="dimmed" size="sm" ta="center">{children}</Text>}
      {action}
    </Stack>
  );
}

export function Failed({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  return (
    <Alert color="red" icon={<IconAlertTriangle aria-hidden />} title="Could not load" role="alert">
      <Stack gap="xs" align="flex-start">
        <Text size="sm">{errorMessage(error)}</Text>
        {onRetry && (
          <Button size="xs" variant="light" color="red" onClick={onRetry}>
            Try again
          </Button>
        )}
      </Stack>
    </Alert>
  );
}

export function NotFound() {
  return (
    <Stack align="center" py="xl">
      <Title order={2}>Page not found</Title>
      <Text c="dimmed">There is nothing at this address.</Text>
      <Button component={Link} to="/tickets" variant="light">
        Go to tickets
      </Button>
    </Stack>
  );
}

export function RouteError() {
  const error = useRouteError();
  return (
    <Center p="xl">
      <Failed error={error} onRetry={() => window.location.reload()} />
    </Center>
  );
}

/** What a paged list shows from its infinite query: loading, failure, empty, or the items, and a
 *  button for the next page while there is one. */
export function Paged({
  query,
  count,
  empty,
  children,
}: {
  query: Pick<
    UseInfiniteQueryResult,
    "isPending" | "isError" | "error" | "refetch" | "hasNextPage" | "fetchNextPage" | "isFetchingNextPage"
  >;
  /** How many items the loaded pages hold. */
  count: number;
  empty: ReactNode;
  children: ReactNode;
}) {
  if (query.isPending) return <Loading />;
  if (query.isError) return <Failed error={query.error} onRetry={() => void query.refetch()} />;
  if (count === 0) return empty;
  return (
    <>
      {children}
      {query.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void query.fetchNextPage()}
          loading={query.isFetchingNextPage}
          style={{ alignSelf: "flex-start" }}
        >
          Load more
        </Button>
      )}
    </>
  );
}
