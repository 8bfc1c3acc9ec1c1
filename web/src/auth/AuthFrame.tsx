import { Box, Center, Group, Text } from "@mantine/core";
import type { ReactNode } from "react";
import { Logo } from "../layout/Logo";

export function AuthFrame({ children }: { children: ReactNode }) {
  return (
    <Center mih="100vh" p="md" component="main">
      <Box w="100%" maw={420}>
        <Group justify="center" mb="md" gap="xs">
          <Logo />
          <Text fw={700} size="xl">
            Docket
          </Text>
        </Group>
        {children}
      </Box>
    </Center>
  );
}
