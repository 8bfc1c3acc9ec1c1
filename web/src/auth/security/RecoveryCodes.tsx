import { ShownOnce } from "../../ui/ShownOnce";

/** Recovery codes, shown once: each signs in once when the app or passkey is out of reach. */
export function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  return (
    <ShownOnce title="Your recovery codes" value={codes.join("\n")} testId="recovery-codes" onDone={onDone}>
      Keep them somewhere safe: each one signs you in once if you lose your authenticator app or passkey. They are not
      shown again.
    </ShownOnce>
  );
}
