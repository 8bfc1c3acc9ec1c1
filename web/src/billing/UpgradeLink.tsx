import { Button } from "@mantine/core";
import { Link } from "react-router";
import { useSession } from "../auth/useSession";

/** Under a refusal for a plan limit: the way to a bigger plan, for the owners who may take it. */
export function UpgradeLink() {
  if (useSession()?.role !== "owner") return null;
  return (
    <Button component={Link} to="/admin/settings#plan" size="xs" variant="white" color="red" mt="xs">
      See plans and upgrade
    </Button>
  );
}
