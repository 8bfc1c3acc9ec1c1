import { Avatar, Menu, UnstyledButton } from "@mantine/core";
import { IconBuilding, IconCheck, IconKeyboard, IconLogout, IconUserCircle } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { api, call } from "../api/client";
import { signOut, switchOrganization } from "../api/session";
import { useSession } from "../auth/useSession";
import { notifyError } from "../ui/forms";

export function UserMenu({ onHelp }: { onHelp: () => void }) {
  const session = useSession();
  const navigate = useNavigate();
  const client = useQueryClient();
  const me = useQuery({
    queryKey: ["me", session?.organization.id],
    queryFn: () => call(api.GET("/api/v1/auth/me")),
  });
  const initials = (session?.user.name ?? "?")
    .split(/\s+/)
    .map((w) => w[0])
    .join("")
    .slice(0, 2)
    .toUpperCase();

  async function switchTo(slug: string) {
    try {
      await switchOrganization(slug);
      client.clear();
      navigate("/tickets");
    } catch (err) {
      notifyError(err, "Could not switch organization");
    }
  }

  async function leave() {
    try {
      await signOut();
    } finally {
      client.clear();
      navigate("/signin", { replace: true });
    }
  }

  return (
    <Menu position="bottom-end" width={260}>
      <Menu.Target>
        <UnstyledButton aria-label={`Account menu for ${session?.user.name ?? ""}`}>
          <Avatar color="blue" radius="xl" size="md">
            {initials}
          </Avatar>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>
          {session?.user.name} · {session?.role}
        </Menu.Label>
        {(me.data?.organizations.length ?? 0) > 1 && <Menu.Label>Switch organization</Menu.Label>}
        {(me.data?.organizations.length ?? 0) > 1 &&
          me.data?.organizations.map((m) => (
            <Menu.Item
              key={m.organization.id}
              leftSection={
                m.organization.id === session?.organization.id ? (
                  <IconCheck size={16} aria-hidden />
                ) : (
                  <IconBuilding size={16} aria-hidden />
                )
              }
              onClick={() => void switchTo(m.organization.slug)}
              disabled={m.organization.id === session?.organization.id}
            >
              {m.organization.name}
            </Menu.Item>
          ))}
        <Menu.Divider />
        <Menu.Item leftSection={<IconUserCircle size={16} aria-hidden />} onClick={() => navigate("/account")}>
          Your account
        </Menu.Item>
        <Menu.Item leftSection={<IconKeyboard size={16} aria-hidden />} onClick={onHelp}>
          Keyboard shortcuts
        </Menu.Item>
        <Menu.Item leftSection={<IconLogout size={16} aria-hidden />} onClick={() => void leave()}>
          Sign out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}
