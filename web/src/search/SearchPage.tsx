import { Anchor, Button, Group, Paper, Stack, Text, TextInput, Title } from "@mantine/core";
import { IconSearch } from "@tabler/icons-react";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { api, call } from "../api/client";
import { PriorityBadge, StatusBadge } from "../tickets/badges";
import { Empty, Failed, Loading } from "../ui/states";
import { relative } from "../ui/time";

/** Search results: tickets ranked by how well their text matches, with highlighted passages. */
export function SearchPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [text, setText] = useState(q);
  const results = useInfiniteQuery({
    queryKey: ["search", q],
    queryFn: ({ pageParam }) =>
      call(api.GET("/api/v1/search", { params: { query: { q, cursor: pageParam, limit: 25 } } })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    enabled: q.trim().length > 0,
  });
  const hits = results.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack>
      <Title order={1} size="h2">
        Search
      </Title>
      <form
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setParams(text.trim() ? { q: text.trim() } : {});
        }}
      >
        <Group align="flex-end" wrap="nowrap">
          <TextInput
            label="Search tickets and comments"
            description={'Words, "exact phrases", -exclusions, and "or" between alternatives'}
            value={text}
            onChange={(e) => setText(e.currentTarget.value)}
            leftSection={<IconSearch size={16} aria-hidden />}
            style={{ flex: 1 }}
            maxLength={200}
          />
          <Button type="submit">Search</Button>
        </Group>
      </form>
      {!q.trim() ? (
        <Text c="dimmed">Type what you are looking for.</Text>
      ) : results.isPending ? (
        <Loading label="Searching" />
      ) : results.isError ? (
        <Failed error={results.error} onRetry={() => void results.refetch()} />
      ) : hits.length === 0 ? (
        <Empty title="Nothing found">Try other words, or fewer of them.</Empty>
      ) : (
        <Stack gap="xs" aria-label="Search results">
          {hits.map(({ ticket: t, snippet }) => (
            <Paper key={t.id} withBorder p="sm" data-testid="search-hit">
              <Group justify="space-between" wrap="nowrap" align="flex-start">
                <Stack gap={4} style={{ minWidth: 0 }}>
                  <Anchor component={Link} to={`/tickets/${t.key}`} fw={600}>
                    <Text span ff="monospace" size="sm" mr="xs">
                      {t.key}
                    </Text>
                    {t.title}
                  </Anchor>
                  {/* The server escapes the passage; only its <mark> tags are markup. */}
                  <Text size="sm" c="dimmed" className="snippet" dangerouslySetInnerHTML={{ __html: snippet }} />
                </Stack>
                <Group gap={4} wrap="nowrap" style={{ flexShrink: 0 }}>
                  <StatusBadge status={t.status} />
                  <PriorityBadge priority={t.priority} />
                  <Text size="xs" c="dimmed" visibleFrom="sm">
                    {relative(t.updated_at)}
                  </Text>
                </Group>
              </Group>
            </Paper>
          ))}
          {results.hasNextPage && (
            <Button variant="default" onClick={() => void results.fetchNextPage()} loading={results.isFetchingNextPage}>
              More results
            </Button>
          )}
        </Stack>
      )}
    </Stack>
  );
}
