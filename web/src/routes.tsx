import type { RouteObject } from "react-router";
import { Navigate } from "react-router";
import { RequireSession } from "./auth/RequireSession";
import { AppLayout } from "./layout/AppLayout";
import { NotFound, RouteError } from "./ui/states";

// Pages load on demand: the first visit downloads the shell and the page it opens.
export const routes: RouteObject[] = [
  { path: "/signin", lazy: () => import("./auth/SignIn").then((m) => ({ Component: m.SignIn })) },
  { path: "/signup", lazy: () => import("./auth/SignUp").then((m) => ({ Component: m.SignUp })) },
  {
    path: "/signup/confirm/:token",
    lazy: () => import("./auth/ConfirmSignUp").then((m) => ({ Component: m.ConfirmSignUp })),
  },
  {
    path: "/invite/:token",
    lazy: () => import("./auth/AcceptInvitation").then((m) => ({ Component: m.AcceptInvitation })),
  },
  {
    path: "/claim/:token",
    lazy: () => import("./auth/ClaimContacts").then((m) => ({ Component: m.ClaimContacts })),
  },
  {
    path: "/forgot-password",
    lazy: () => import("./auth/PasswordRecovery").then((m) => ({ Component: m.ForgotPassword })),
  },
  {
    path: "/reset-password/:token",
    lazy: () => import("./auth/PasswordRecovery").then((m) => ({ Component: m.ResetPassword })),
  },
  {
    path: "/",
    element: <RequireSession />,
    errorElement: <RouteError />,
    children: [
      {
        element: <AppLayout />,
        children: [
          { index: true, element: <Navigate to="/tickets" replace /> },
          {
            path: "tickets",
            lazy: () => import("./tickets/TicketList").then((m) => ({ Component: m.TicketList })),
          },
          {
            path: "tickets/:id",
            lazy: () => import("./tickets/TicketPage").then((m) => ({ Component: m.TicketPage })),
          },
          {
            path: "board",
            lazy: () => import("./tickets/Board").then((m) => ({ Component: m.Board })),
          },
          {
            path: "account",
            lazy: () => import("./auth/Account").then((m) => ({ Component: m.Account })),
          },
          {
            path: "link-contacts/:token",
            lazy: () => import("./auth/LinkContacts").then((m) => ({ Component: m.LinkContacts })),
          },
          {
            path: "notifications",
            lazy: () =>
              import("./notifications/Inbox").then((m) => ({ Component: m.Inbox })),
          },
          {
            path: "projects",
            lazy: () => import("./projects/Projects").then((m) => ({ Component: m.Projects })),
          },
          {
            path: "projects/:id",
            lazy: () => import("./projects/ProjectPage").then((m) => ({ Component: m.ProjectPage })),
          },
          {
            path: "admin/people",
            lazy: () => import("./admin/People").then((m) => ({ Component: m.People })),
          },
          {
            path: "admin/settings",
            lazy: () =>
              import("./admin/OrgSettings").then((m) => ({ Component: m.OrgSettings })),
          },
          {
            path: "admin/mail",
            lazy: () => import("./admin/Mail").then((m) => ({ Component: m.Mail })),
          },
          {
            path: "admin/webhooks",
            lazy: () => import("./admin/Webhooks").then((m) => ({ Component: m.Webhooks })),
          },
          {
            path: "search",
            lazy: () => import("./search/SearchPage").then((m) => ({ Component: m.SearchPage })),
          },
          {
            path: "reports",
            lazy: () => import("./reports/Reports").then((m) => ({ Component: m.Reports })),
          },
          {
            path: "admin/sla",
            lazy: () => import("./admin/Sla").then((m) => ({ Component: m.Sla })),
          },
          {
            path: "admin/audit",
            lazy: () => import("./dataRights/AuditLog").then((m) => ({ Component: m.AuditLog })),
          },
          {
            path: "admin/events",
            lazy: () => import("./admin/DeadEvents").then((m) => ({ Component: m.DeadEvents })),
          },
          { path: "*", element: <NotFound /> },
        ],
      },
    ],
  },
];
