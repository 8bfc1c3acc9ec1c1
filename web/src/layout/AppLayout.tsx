import { AppShell, Burger, Group, NavLink, ScrollArea, Text, Tooltip, VisuallyHidden } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import {
  IconBell,
  IconChartBar,
  IconClockHour4,
  IconSearch,
  IconFolders,
  IconLayoutKanban,
  IconListDetails,
  IconSettings,
  IconMail,
  IconWebhook,
  IconShieldCheck,
  IconSkull,
  IconUsers,
} from "@tabler/icons-react";
import { Link, Outlet, useLocation } from "react-router";
import { atLeast, useSession } from "../auth/useSession";
import { PastDueBanner } from "../billing/PastDueBanner";
import { NotificationBell } from "../notifications/Bell";
import { Logo } from "./Logo";
import { ShortcutsHelp, useGlobalShortcuts } from "./shortcuts";
import { UserMenu } from "./UserMenu";
import { useLiveFeed } from "./useLiveFeed";

export function AppLayout() {
  const session = useSession();
  const [opened, { toggle, close }] = useDisclosure();
  const live = useLiveFeed();
  const help = useGlobalShortcuts();
  const { pathname } = useLocation();
  const role = session?.role;
  const staff = atLeast(role, "viewer");

  const links = [
    { to: "/tickets", label: staff ? "Tickets" : "My tickets", icon: IconListDetails, show: true },
    { to: "/board", label: "Board", icon: IconLayoutKanban, show: staff },
    { to: "/notifications", label: "Notifications", icon: IconBell, show: true },
    { to: "/search", label: "Search", icon: IconSearch, show: true },
    { to: "/projects", label: "Projects", icon: IconFolders, show: staff },
    { to: "/reports", label: "Reports", icon: IconChartBar, show: atLeast(role, "manager") },
    { to: "/admin/people", label: "People", icon: IconUsers, show: atLeast(role, "admin") },
    { to: "/admin/settings", label: "Organization", icon: IconSettings, show: atLeast(role, "admin") },
    { to: "/admin/mail", label: "Mail", icon: IconMail, show: atLeast(role, "admin") },
    { to: "/admin/webhooks", label: "Webhooks", icon: IconWebhook, show: atLeast(role, "admin") },
    { to: "/admin/sla", label: "SLA", icon: IconClockHour4, show: atLeast(role, "admin") },
    { to: "/admin/events", label: "Dead events", icon: IconSkull, show: atLeast(role, "admin") },
    { to: "/admin/audit", label: "Audit log", icon: IconShieldCheck, show: atLeast(role, "admin") },
  ];

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Link to="/tickets" aria-label="Docket home">
              <Logo />
            </Link>
            <Text fw={700} visibleFrom="xs">
              {session?.organization.name}
            </Text>
            <Tooltip label={live ? "Live updates on" : "Reconnecting…"}>
              <span
                role="status"
                data-testid="live-indicator"
                data-live={live}
                style={{
                  width: 8,
                  height: 8,
                  borderRadius: 4,
                  background: live ? "var(--mantine-color-green-6)" : "var(--mantine-color-gray-5)",
                }}
              >
                <VisuallyHidden>{live ? "Live updates on" : "Reconnecting"}</VisuallyHidden>
              </span>
            </Tooltip>
          </Group>
          <Group gap="xs" wrap="nowrap">
            <NotificationBell />
            <UserMenu onHelp={help.open} />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="Main">
        <ScrollArea>
          {links
            .filter((l) => l.show)
            .map((l) => (
              <NavLink
                key={l.to}
                component={Link}
                to={l.to}
                label={l.label}
                leftSection={<l.icon size={18} aria-hidden />}
                variant="filled"
                active={pathname === l.to || pathname.startsWith(`${l.to}/`)}
                onClick={close}
              />
            ))}
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main>
        <PastDueBanner />
        <Outlet />
      </AppShell.Main>
      <ShortcutsHelp opened={help.opened} onClose={help.close} />
    </AppShell>
  );
}
