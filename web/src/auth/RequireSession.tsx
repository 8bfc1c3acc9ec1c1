import { useEffect, useState } from "react";
import { Navigate, Outlet, useLocation } from "react-router";
import { refresh } from "../api/session";
import { ClosedOrganization } from "../dataRights/ClosedOrganization";
import { Loading } from "../ui/states";
import { useSession } from "./useSession";

/** Pages behind sign-in: resumes the session from the refresh cookie, or goes to sign-in. */
export function RequireSession() {
  const current = useSession();
  const location = useLocation();
  const [restoring, setRestoring] = useState(current === null);

  useEffect(() => {
    if (current !== null) return;
    let cancelled = false;
    refresh()
      .catch(() => null)
      .finally(() => !cancelled && setRestoring(false));
    return () => {
      cancelled = true;
    };
    // Restores once per mount; later sign-outs navigate below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // A deleted organisation's owner may only restore it.
  if (current?.organization.purge_at) return <ClosedOrganization session={current} />;
  if (current) return <Outlet />;
  if (restoring) return <Loading label="Signing you in" />;
  const next = location.pathname + location.search;
  return <Navigate to={`/signin?next=${encodeURIComponent(next)}`} replace />;
}
